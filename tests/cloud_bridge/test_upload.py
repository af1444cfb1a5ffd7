"""Records go from a real store to the backend simulator over real HTTP, each exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud_bridge.runner import Bridge, read_status
from gateway.store.database import open_database
from gateway.store.records import SyncState, now_ms
from simulators.backend import BackendServer, Faults, demo_roster
from tests.cloud_bridge.helpers import (
    all_synced,
    bridge_settings,
    eventually,
    insert_records,
    sync_states,
)

DAY_MS = 24 * 3600 * 1000


def stored_once(backend: BackendServer, keys: list[str]) -> None:
    """The backend holds exactly ``keys``, each stored once."""
    records = backend.state.records()
    assert sorted(r["idempotency_key"] for r in records) == sorted(keys)
    assert all(r["stored"] == 1 for r in records)


def people_for(n: int) -> list[str | None]:
    return [f"u{(i % 20) + 1:04d}" for i in range(n)]


async def test_pending_records_are_uploaded_once_and_marked_synced(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, people_for(25))

    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()

    stored_once(backend, keys)
    assert stats.counters.uploaded == 25
    assert stats.pending == 0
    assert stats.by_state == {SyncState.SYNCED: 25}
    upload = backend.state.records()[0]
    assert upload["userid"] == "u0001"
    assert upload["device_id"] == "term-01"


async def test_status_is_saved_for_other_processes(backend: BackendServer, tmp_path: Path) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, people_for(3))
    async with Bridge(settings):
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")

    db = await open_database(settings.db_path)
    try:
        status = await read_status(db)
    finally:
        await db.close()
    assert status is not None
    assert status["uploaded"] == 3


async def test_wake_starts_a_round_without_waiting_for_the_interval(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, interval_s=3600.0)
    async with Bridge(settings) as bridge:
        await asyncio.sleep(0.2)  # let the first (empty) round go idle
        keys = await insert_records(settings.db_path, people_for(3))
        bridge.wake()
        await eventually(lambda: all_synced(settings.db_path, keys), "records synced on wake")
    stored_once(backend, keys)


async def test_cancelled_halfway_then_restarted_uploads_each_record_once(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, batch_size=4, concurrency=2)
    keys = await insert_records(settings.db_path, people_for(30))
    backend.state.set_faults(Faults(latency_ms=20))

    stop = asyncio.Event()
    first = asyncio.create_task(Bridge(settings).run(stop), name="test.bridge.first")

    async def some_stored() -> bool:
        return len(backend.state.records()) >= 8

    await eventually(some_stored, "some records at the backend")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not await all_synced(settings.db_path, keys)  # it really stopped halfway

    backend.state.set_faults(Faults())
    async with Bridge(settings):
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
    stored_once(backend, keys)


async def test_token_expiry_mid_run_renews_and_loses_nothing(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    first = await insert_records(settings.db_path, people_for(10))
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, first), "first records synced")
        backend.state.expire_tokens()  # the cached token now answers 42001
        second = await insert_records(settings.db_path, people_for(10), first_seq=11)
        bridge.wake()
        await eventually(lambda: all_synced(settings.db_path, second), "second records synced")
        backend.state.revoke_tokens()  # and now 40014
        third = await insert_records(settings.db_path, people_for(10), first_seq=21)
        bridge.wake()
        await eventually(lambda: all_synced(settings.db_path, third), "third records synced")
        stats = await bridge.stats()

    stored_once(backend, first + second + third)
    assert backend.state.snapshot()["calls"]["gettoken"] >= 3
    assert stats.counters.retries == 0  # the call in flight was repeated, not given up


async def test_short_token_lifetime_is_renewed_before_it_runs_out(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_token_ttl(1)  # renewed after 0.75 s, a quarter before expiry
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, people_for(5))
    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "first records synced")
        await asyncio.sleep(1.2)
        more = await insert_records(settings.db_path, people_for(5), first_seq=6)
        bridge.wake()
        await eventually(lambda: all_synced(settings.db_path, more), "later records synced")
    stored_once(backend, keys + more)
    assert backend.state.snapshot()["calls"]["gettoken"] >= 2


async def test_unknown_user_is_failed_with_the_backend_reason_and_others_sync(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, ["u0001", "ghost", "u0002", None, "u0003"])
    good = [keys[0], keys[2], keys[4]]

    async def settled() -> bool:
        states = await sync_states(settings.db_path)
        return all(s != SyncState.PENDING for s, _ in states.values())

    async with Bridge(settings) as bridge:
        await eventually(settled, "every record synced or failed")
        stats = await bridge.stats()

    states = await sync_states(settings.db_path)
    assert [states[k][0] for k in good] == [SyncState.SYNCED] * 3
    assert states[keys[1]][0] == SyncState.FAILED
    assert "33012" in (states[keys[1]][1] or "")
    assert states[keys[3]][0] == SyncState.FAILED
    assert "no person" in (states[keys[3]][1] or "")
    stored_once(backend, good)
    assert stats.counters.refused == 2


async def test_punch_older_than_180_days_is_refused(backend: BackendServer, tmp_path: Path) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, ["u0001"], device_ts_ms=now_ms() - 181 * DAY_MS)

    async def failed() -> bool:
        return (await sync_states(settings.db_path))[keys[0]][0] == SyncState.FAILED

    async with Bridge(settings):
        await eventually(failed, "the old record failed")
    assert "850001" in ((await sync_states(settings.db_path))[keys[0]][1] or "")
    assert backend.state.records() == []


async def test_backend_500s_are_retried_until_they_succeed(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_faults(Faults(fail_status=6))
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, people_for(12))

    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()

    stored_once(backend, keys)
    assert backend.state.snapshot()["calls"]["upload"] >= 12 + 6
    assert stats.counters.retries >= 6
    assert stats.counters.last_error is not None
    assert "HTTP 500" in stats.counters.last_error


async def test_rate_limit_is_retried(backend: BackendServer, tmp_path: Path) -> None:
    backend.state.set_faults(Faults(throttle=2))
    settings = bridge_settings(tmp_path, backend.base_url)
    keys = await insert_records(settings.db_path, people_for(4))
    async with Bridge(settings):
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
    stored_once(backend, keys)


async def test_backend_down_then_up_catches_up(tmp_path: Path) -> None:
    server = BackendServer()
    server.state.set_roster(demo_roster(20))
    server.start()
    base_url = server.base_url
    server.stop()  # nothing listens: every call is refused

    settings = bridge_settings(tmp_path, base_url)
    keys = await insert_records(settings.db_path, people_for(6))
    async with Bridge(settings) as bridge:

        async def failed_once() -> bool:
            return bridge.counters.retries > 0

        await eventually(failed_once, "a failed attempt")
        assert bridge.counters.last_error is not None
        restarted = BackendServer(server.state, port=server.port)
        restarted.start()
        try:
            await eventually(lambda: all_synced(settings.db_path, keys), "caught up")
        finally:
            restarted.stop()
    stored_once(restarted, keys)


async def test_wrong_app_secret_keeps_records_pending(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, app_secret="wrong")
    keys = await insert_records(settings.db_path, people_for(2))
    async with Bridge(settings) as bridge:

        async def refused() -> bool:
            return bridge.counters.last_error is not None

        await eventually(refused, "the credentials refused")
        assert "app_secret" in (bridge.counters.last_error or "")
    states = await sync_states(settings.db_path)
    assert {states[k][0] for k in keys} == {SyncState.PENDING}
