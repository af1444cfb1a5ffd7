"""The site's UTC offset as devices need it: now, and when it next changes.

Devices keep UTC (records carry it) and show local time with an offset in minutes. A fixed
offset in their configuration is wrong for half the year at a site with daylight saving, so
``cmd/time`` carries the offset now and the next change (docs/protocol.md, "Time"): a panel
then turns 01:59 into 03:00 at the right moment even if it is offline just then.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

HORIZON_DAYS = 14  # how far ahead a change is looked for; the gateway re-sends time sooner


def offset_min(zone: ZoneInfo, ts_ms: int) -> int:
    when = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).astimezone(zone)
    off = when.utcoffset()
    return int(off.total_seconds() // 60) if off is not None else 0


def next_change(
    zone: ZoneInfo, ts_ms: int, horizon_days: int = HORIZON_DAYS
) -> tuple[int, int] | None:
    """(when in ms, new offset) of the first offset change after ``ts_ms``, within the horizon.

    Changes happen on whole minutes and no two come within an hour of each other, so hourly
    steps find the hour and a bisection finds the minute.
    """
    now_off = offset_min(zone, ts_ms)
    hour = 3_600_000
    lo = ts_ms
    for _ in range(horizon_days * 24):
        hi = lo + hour
        if offset_min(zone, hi) != now_off:
            lo_min, hi_min = lo // 60_000, hi // 60_000  # first minute with the new offset
            while hi_min - lo_min > 1:
                mid = (lo_min + hi_min) // 2
                if offset_min(zone, mid * 60_000) == now_off:
                    lo_min = mid
                else:
                    hi_min = mid
            return hi_min * 60_000, offset_min(zone, hi_min * 60_000)
        lo = hi
    return None


@functools.lru_cache(maxsize=64)
def _zone_at_minute(zone: ZoneInfo, minute: int) -> tuple[int, tuple[int, int] | None]:
    ts = minute * 60_000
    return offset_min(zone, ts), next_change(zone, ts)


def zone_at(zone: ZoneInfo, ts_ms: int) -> tuple[int, tuple[int, int] | None]:
    """``(offset now, next change)`` for ``cmd/time``; worked out once a minute, however many
    devices come online in it (changes fall on whole minutes, so the minute's start will do)."""
    return _zone_at_minute(zone, ts_ms // 60_000)
