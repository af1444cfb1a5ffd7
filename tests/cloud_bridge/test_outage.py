"""A one-hour backend outage, run on a simulated clock: punches keep arriving all hour, the
bridge keeps trying, and once the backend is back it catches up with today's punches first,
then yesterday's backlog, each device's records in sequence order, each stored once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cloud_bridge.runner import Bridge
from simulators.backend import BackendServer, BackendState, Faults, demo_roster
from tests.cloud_bridge.helpers import all_synced, bridge_settings, eventually, insert_records

DEVICES = ("term-a", "term-b", "term-c")
BACKLOG_PER_DEVICE = 10
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
SITE_TZ = ZoneInfo("Asia/Shanghai")  # attendance.timezone's default


class SimClock:
    """Wall-clock milliseconds that move only when the test says; shared by the backend and
    the bridge, so an hour passes in a few seconds."""

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> SimClock:
    # 08:00 site time tomorrow: a morning with yesterday evening's punches still queued.
    tomorrow = dt.datetime.now(SITE_TZ).date() + dt.timedelta(days=1)
    start = dt.datetime.combine(tomorrow, dt.time(8, 0), SITE_TZ)
    return SimClock(int(start.timestamp() * 1000))


@pytest.fixture
def sim(clock: SimClock) -> Iterator[BackendServer]:
    server = BackendServer(BackendState(clock=clock.now_ms, rate_limit_per_s=200))
    server.state.set_roster(demo_roster(20))
    server.start()
    yield server
    server.stop()


async def test_one_hour_outage_catches_up_today_first_in_order_each_once(
    sim: BackendServer, clock: SimClock, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, sim.base_url, rate_per_s=150, batch_size=10)
    db = settings.db_path
    seq = dict.fromkeys(DEVICES, 0)

    async def punch(device: str, at_ms: int) -> str:
        seq[device] += 1
        (key,) = await insert_records(
            db,
            [f"u{seq[device] % 20 + 1:04d}"],
            device_id=device,
            first_seq=seq[device],
            device_ts_ms=at_ms,
        )
        return key

    backlog = [
        await punch(dev, clock.ms - 14 * HOUR_MS + i * MINUTE_MS)  # yesterday, 18:00 on
        for dev in DEVICES
        for i in range(BACKLOG_PER_DEVICE)
    ]
    # Ends half a minute after the hour's last punch: the outage must still hold while the test
    # looks at what got through (ending on that punch's very millisecond let the bridge in).
    sim.state.set_faults(Faults(outage_until_ms=clock.ms + HOUR_MS + MINUTE_MS // 2))
    in_outage: list[str] = []
    during_catchup: list[str] = []
    async with Bridge(settings, clock=clock.now_ms) as bridge:
        for minute in range(60):  # the hour: a punch a minute, round the three terminals
            clock.ms += MINUTE_MS
            in_outage.append(await punch(DEVICES[minute % 3], clock.ms))
            await asyncio.sleep(0.03)
        stats = await bridge.stats()
        assert sim.state.records() == []  # nothing got through during the outage
        assert stats.pending == len(backlog) + 60
        assert stats.counters.retry_causes["http_503"] > 0  # it kept trying all along
        assert stats.drain_eta_s is None  # and says the queue is not draining

        clock.ms += MINUTE_MS  # the backend is back; punches keep coming during the catch-up
        for i in range(15):
            during_catchup.append(await punch(DEVICES[i % 3], clock.ms + i * 1000))
            await asyncio.sleep(0.02)
        everything = backlog + in_outage + during_catchup
        await eventually(lambda: all_synced(db, everything), "caught up")

    stored = sim.state.records()
    assert sorted(r["idempotency_key"] for r in stored) == sorted(everything)
    assert all(r["stored"] == 1 for r in stored)
    arrival = {r["idempotency_key"]: r["arrival"] for r in stored}
    # Today's punches made during the outage all went before any of yesterday's backlog.
    assert max(arrival[k] for k in in_outage) < min(arrival[k] for k in backlog)
    # Within today's and within the backlog, each device's records arrived in sequence order.
    for group in (backlog, in_outage + during_catchup):
        for dev in DEVICES:
            keys = [k for k in group if k.startswith(f"{dev}:")]
            assert sorted(keys, key=arrival.__getitem__) == keys
