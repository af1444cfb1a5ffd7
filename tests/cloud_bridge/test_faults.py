"""The simulator's faults against a running bridge: every record reaches the backend exactly
once whatever goes wrong on the way, and the client reacts to each fault the right way."""

from __future__ import annotations

from pathlib import Path

from cloud_bridge.dingtalk import DingTalkAdapter
from cloud_bridge.runner import Bridge
from gateway.store.records import SyncState, now_ms
from simulators.backend import BackendServer, Faults
from tests.cloud_bridge.helpers import (
    all_synced,
    bridge_settings,
    eventually,
    insert_records,
    sync_states,
)

DAY_MS = 24 * 3600 * 1000


async def spread(db_path: Path, per_device: int, devices: int = 4) -> list[str]:
    """``per_device`` pending punches on each of ``devices`` terminals."""
    keys: list[str] = []
    for dev in range(devices):
        people = [f"u{(i % 20) + 1:04d}" for i in range(per_device)]
        keys += await insert_records(db_path, people, device_id=f"term-{dev:02d}")
    return keys


def stored_once(backend: BackendServer, keys: list[str]) -> list[dict[str, object]]:
    records = backend.state.records()
    assert sorted(str(r["idempotency_key"]) for r in records) == sorted(keys)
    assert all(r["stored"] == 1 for r in records)
    return records


def in_device_order(records: list[dict[str, object]]) -> bool:
    """Each device's records arrived at the backend in sequence order."""
    last: dict[str, str] = {}
    for r in records:  # arrival order
        dev, msg = str(r["idempotency_key"]).split(":")
        if msg < last.get(dev, ""):
            return False
        last[dev] = msg
    return True


async def test_token_expiring_in_the_middle_of_a_batch_loses_no_call(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, batch_size=40, rate_per_s=100)
    backend.state.set_rate_limit(0)
    keys = await spread(settings.db_path, 10)
    backend.state.set_faults(Faults(expire_tokens_after=7))  # mid-way through the first round
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()
    stored_once(backend, keys)
    assert backend.state.snapshot()["calls"]["gettoken"] == 2  # one renewal, shared by all
    assert stats.counters.retries == 0  # the calls the expiry hit were repeated at once


async def test_a_429_storm_slows_the_client_and_everything_arrives_once_in_order(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, batch_size=40, rate_per_s=100)
    backend.state.set_rate_limit(0)
    keys = await spread(settings.db_path, 10)
    backend.state.set_faults(Faults(fail_status=25, fail_status_code=429, retry_after_s=0.2))
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()
        adapter = bridge.adapter
    records = stored_once(backend, keys)
    assert in_device_order(records)
    assert isinstance(adapter, DingTalkAdapter)
    assert adapter.bucket.slowdowns >= 1
    assert stats.counters.retry_causes["http_429"] >= 1
    assert backend.state.snapshot()["calls"]["upload"] >= 40 + 25


async def test_answer_dropped_after_commit_is_retried_into_the_idempotency_key(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await spread(settings.db_path, 3)
    backend.state.set_faults(Faults(drop_after_commit=4))
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()
    records = stored_once(backend, keys)
    assert sorted(int(str(r["submissions"])) for r in records) == [1] * 8 + [2] * 4
    assert stats.counters.duplicates == 4  # the retry met the key: stored before, not again
    assert stats.counters.retries == 4


async def test_calls_that_hang_time_out_and_are_retried(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, timeout_s=0.5)
    keys = await spread(settings.db_path, 2)
    backend.state.set_faults(Faults(timeouts=2))
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()
    stored_once(backend, keys)
    assert stats.counters.retry_causes["timeout"] == 2


async def test_backend_clock_skew_makes_old_punches_refused_for_good(
    backend: BackendServer, tmp_path: Path
) -> None:
    """A backend whose clock runs 179 days ahead refuses punches 2 days old as over 180 days:
    the refusal is permanent and carries the backend's reason, and the fresh ones go through."""
    settings = bridge_settings(tmp_path, backend.base_url)
    old = await insert_records(settings.db_path, ["u0001"], device_ts_ms=now_ms() - 2 * DAY_MS)
    fresh = await insert_records(settings.db_path, ["u0002"], device_id="term-02")
    backend.state.set_faults(Faults(clock_skew_ms=179 * DAY_MS))

    async def settled() -> bool:
        states = await sync_states(settings.db_path)
        return all(s != SyncState.PENDING for s, _ in states.values())

    async with Bridge(settings):
        await eventually(settled, "every record synced or failed")
    states = await sync_states(settings.db_path)
    assert states[old[0]][0] == SyncState.FAILED
    assert "850001" in (states[old[0]][1] or "")
    assert states[fresh[0]][0] == SyncState.SYNCED
