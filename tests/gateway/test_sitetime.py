"""The offsets cmd/time carries, for sites with and without daylight saving."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from gateway.sitetime import next_change, offset_min

BERLIN = ZoneInfo("Europe/Berlin")


def _ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def test_berlin_before_the_spring_change_knows_the_minute_it_comes() -> None:
    now = _ms(2026, 3, 28, 12, 0)
    assert offset_min(BERLIN, now) == 60
    assert next_change(BERLIN, now) == (_ms(2026, 3, 29, 1, 0), 120)


def test_berlin_in_autumn_goes_back_an_hour() -> None:
    now = _ms(2026, 10, 20, 9, 0)
    assert offset_min(BERLIN, now) == 120
    assert next_change(BERLIN, now) == (_ms(2026, 10, 25, 1, 0), 60)


def test_a_change_beyond_the_horizon_is_not_announced() -> None:
    assert next_change(BERLIN, _ms(2026, 6, 1, 0, 0)) is None


def test_shanghai_has_no_change() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert offset_min(zone, _ms(2026, 3, 28, 12, 0)) == 480
    assert next_change(zone, _ms(2026, 3, 28, 12, 0), horizon_days=400) is None


def test_half_hour_zones_and_odd_minutes_are_kept() -> None:
    # Lord Howe Island moves by 30 minutes: +10:30 in winter, +11:00 in summer.
    zone = ZoneInfo("Australia/Lord_Howe")
    now = _ms(2026, 9, 30, 0, 0)
    assert offset_min(zone, now) == 630
    when, off = next_change(zone, now) or (0, 0)
    assert off == 660
    assert dt.datetime.fromtimestamp(when / 1000, zone).strftime("%H:%M") == "02:30"
