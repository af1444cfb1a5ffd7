"""The client's token bucket: it paces calls under the backend's limit, and slows down when the
backend says "too fast" anyway. Pacing is checked on a fake clock; the limit itself against the
simulator, which counts every call it had to refuse with errcode 90002."""

from __future__ import annotations

from pathlib import Path

from cloud_bridge.dingtalk import DingTalkAdapter
from cloud_bridge.ratelimit import RATE_HEADROOM, TokenBucket
from cloud_bridge.runner import Bridge
from simulators.backend import BackendServer
from tests.cloud_bridge.helpers import all_synced, bridge_settings, eventually, insert_records


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds


async def paced_starts(bucket: TokenBucket, fake: FakeTime, n: int) -> list[float]:
    starts = []
    for _ in range(n):
        await bucket.acquire()
        starts.append(fake.now_s)
    return starts


async def test_calls_are_spaced_so_no_second_holds_more_than_the_declared_rate() -> None:
    fake = FakeTime()
    bucket = TokenBucket(20, clock=fake.clock, sleep=fake.sleep)
    starts = await paced_starts(bucket, fake, 200)
    in_any_second = max(
        sum(1 for t in starts if s <= t < s + 1.0) for s in starts
    )  # the backend's sliding window, anchored at every call
    assert in_any_second == 20
    elapsed_s = starts[-1] - starts[0]
    assert 199 / elapsed_s >= 20 * RATE_HEADROOM * 0.999  # and it keeps up the declared rate


async def test_no_burst_after_an_idle_spell() -> None:
    fake = FakeTime()
    bucket = TokenBucket(10, clock=fake.clock, sleep=fake.sleep)
    await paced_starts(bucket, fake, 3)
    fake.now_s += 60  # idle for a minute: a classic bucket would now allow a burst
    starts = await paced_starts(bucket, fake, 11)
    assert starts[10] - starts[0] >= 1.0  # still no more than 10 in a second


async def test_a_rate_limit_answer_pauses_then_halves_then_recovers() -> None:
    fake = FakeTime()
    bucket = TokenBucket(20, clock=fake.clock, sleep=fake.sleep)
    await bucket.acquire()
    before = fake.now_s
    bucket.slow_down(2.0)
    await bucket.acquire()
    assert fake.now_s - before >= 2.0  # nothing goes out during the backend's Retry-After
    assert bucket.rate_per_s == 20 * RATE_HEADROOM / 2
    for _ in range(100):
        bucket.succeeded()
    assert bucket.rate_per_s == 20 * RATE_HEADROOM


async def test_bridge_at_the_declared_rate_never_meets_the_limit(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_rate_limit(40)
    settings = bridge_settings(tmp_path, backend.base_url, rate_per_s=40, batch_size=40)
    keys = []
    for dev in range(8):  # 8 devices, so calls run side by side and could outrun the limit
        keys += await insert_records(settings.db_path, ["u0001"] * 15, device_id=f"term-{dev}")
    async with Bridge(settings):
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
    snap = backend.state.snapshot()
    assert snap["rate_limited"] == {}  # not one 90002 answer
    assert snap["records"] == 120


async def test_bridge_declared_too_fast_is_slowed_by_90002_and_loses_nothing(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_rate_limit(20)
    settings = bridge_settings(tmp_path, backend.base_url, rate_per_s=200, batch_size=40)
    keys = []
    for dev in range(8):
        keys += await insert_records(settings.db_path, ["u0002"] * 8, device_id=f"term-{dev}")
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()
        adapter = bridge.adapter
    assert isinstance(adapter, DingTalkAdapter)
    assert backend.state.snapshot()["rate_limited"]["upload"] > 0
    assert adapter.bucket.slowdowns > 0
    assert adapter.bucket.rate_per_s < 200 * RATE_HEADROOM  # it paces itself lower now
    assert stats.counters.retry_causes.get("errcode_90002", 0) > 0
    records = backend.state.records()
    assert sorted(r["idempotency_key"] for r in records) == sorted(keys)
    assert all(r["stored"] == 1 for r in records)
