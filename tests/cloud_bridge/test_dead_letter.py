"""Records the backend refused for good wait in the store with its reason, show up in
``tack records --failed`` and ``tack status``, and are sent again only on request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud_bridge.runner import Bridge
from gateway.cli import app
from gateway.cli.common import console
from gateway.config import load_settings
from gateway.store.records import SyncState
from simulators.backend import BackendServer, demo_roster
from tests.cloud_bridge.helpers import (
    all_synced,
    bridge_toml,
    eventually,
    insert_records,
    sync_states,
)


async def settled(db_path: Path) -> bool:
    states = await sync_states(db_path)
    return all(s != SyncState.PENDING for s, _ in states.values())


async def tack(*args: str) -> tuple[int, str]:
    """The command as a person types it (in a thread: it runs its own event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def test_refused_records_are_listed_kept_and_retried_only_on_request(
    backend: BackendServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 240)  # a wide terminal: reasons on one line
    config = bridge_toml(tmp_path, backend.base_url)
    settings = load_settings(config)
    db = settings.db_path
    keys = await insert_records(db, ["u0001", "newcomer", "u0002", "late-joiner"])
    async with Bridge(settings):
        await eventually(lambda: settled(db), "every record synced or failed")

    code, out = await tack("records", "--failed", "--config", str(config))
    assert code == 0
    assert "unknown userid newcomer" in out
    assert "unknown userid late-joiner" in out
    assert "2 record(s)" in out
    code, out = await tack("status", "--config", str(config))
    assert code == 0
    assert "errcode 33012 (2)" in out

    # A restarted bridge leaves them alone: refused for good means not retried by itself.
    async with Bridge(settings):
        await eventually(lambda: settled(db), "nothing pending")
    assert backend.state.snapshot()["calls"]["upload"] == 4

    # The backend learns one of the two people; only that record is asked to go again.
    backend.state.set_roster([*demo_roster(20), {"userid": "newcomer", "name": "N"}])
    states = await sync_states(db)
    assert states[keys[1]][0] == SyncState.FAILED
    newcomer_id = 2  # row ids follow insertion order
    code, out = await tack(
        "records", "--retry-failed", "--id", str(newcomer_id), "--config", str(config)
    )
    assert code == 0
    assert "1 record(s) queued" in out
    async with Bridge(settings):
        await eventually(lambda: all_synced(db, [keys[1]]), "the newcomer's record synced")
    states = await sync_states(db)
    assert states[keys[3]][0] == SyncState.FAILED  # not asked for: still dead-lettered
    assert sorted(r["idempotency_key"] for r in backend.state.records()) == sorted(keys[:3])

    # All of them again: the late joiner is still unknown, so it is refused again, same reason.
    code, out = await tack("records", "--retry-failed", "--config", str(config))
    assert "1 record(s) queued" in out
    async with Bridge(settings):
        await eventually(lambda: settled(db), "refused again")
    assert (await sync_states(db))[keys[3]] == (
        SyncState.FAILED,
        "errcode 33012: unknown userid late-joiner",
    )


async def test_retry_of_a_record_that_is_not_failed_says_so(
    backend: BackendServer, tmp_path: Path
) -> None:
    config = bridge_toml(tmp_path, backend.base_url)
    await insert_records(load_settings(config).db_path, ["u0001"])
    code, out = await tack(
        "records", "--retry-failed", "--id", "1", "--id", "99", "--config", str(config)
    )
    assert code == 1
    assert "not failed (or no such record): 1, 99" in out
    code, out = await tack("records", "--id", "1", "--config", str(config))
    assert code == 2
    assert "--retry-failed" in out
