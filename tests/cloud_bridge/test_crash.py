"""The crash window: the backend stored a record, the bridge died before marking it synced.

The bridge runs as a real subprocess and is killed with SIGKILL, so nothing of it gets to
clean up; the restarted bridge must replay under the same idempotency keys and end with every
record stored once at the backend and synced in the store.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.store.records import SyncState
from simulators.backend import BackendServer, Faults
from tests.cloud_bridge.helpers import (
    all_synced,
    bridge_toml,
    eventually,
    insert_records,
    sync_states,
)

REPO = Path(__file__).resolve().parents[2]
RECORDS = 8
STOP_TIMEOUT_S = 15


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Bridge subprocesses started by the test; killed afterwards if still running."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_bridge(
    config: Path, log_path: Path, procs: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACK_")}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud_bridge.cli", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    procs.append(proc)
    return proc


async def test_kill_after_backend_commit_then_restart_stores_each_once(
    backend: BackendServer, tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    config = bridge_toml(tmp_path, backend.base_url, concurrency=RECORDS, batch_size=RECORDS)
    db_path = load_settings(config).db_path
    keys = await insert_records(db_path, [f"u{i:04d}" for i in range(1, RECORDS + 1)])
    log_path = tmp_path / "bridge.log"

    backend.state.set_faults(Faults(hold_after_commit_s=60))
    first = start_bridge(config, log_path, spawn)

    async def all_stored() -> bool:
        assert first.poll() is None, log_path.read_text()
        return len(backend.state.records()) == RECORDS

    await eventually(all_stored, "every record stored while its answer is held")
    first.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.wait, STOP_TIMEOUT_S)

    # The crash window is real: the backend has them all, the store has none marked.
    states = await sync_states(db_path)
    assert {states[k][0] for k in keys} == {SyncState.PENDING}

    backend.state.set_faults(Faults())
    second = start_bridge(config, log_path, spawn)
    await eventually(lambda: all_synced(db_path, keys), "all synced after the restart")

    records = backend.state.records()
    assert sorted(r["idempotency_key"] for r in records) == sorted(keys)
    assert all(r["stored"] == 1 for r in records)
    assert all(r["submissions"] == 2 for r in records)  # sent twice, stored once

    second.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.wait, STOP_TIMEOUT_S) == 0, log_path.read_text()
