"""The crash window: the backend stored a record, the bridge died before marking it synced;
and a catch-up interrupted by SIGKILL again and again.

The bridge runs as a real subprocess and is killed with SIGKILL, so nothing of it gets to
clean up; the restarted bridge must replay under the same idempotency keys and end with every
record stored once at the backend and synced in the store.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import random
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
    # One record per device: a device's records go one at a time (to keep their order), so
    # records of different devices are what the bridge sends side by side.
    keys = [
        key
        for i in range(1, RECORDS + 1)
        for key in await insert_records(db_path, [f"u{i:04d}"], device_id=f"term-{i:02d}")
    ]
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


KILLS = 10
CATCHUP_RECORDS = 300
CATCHUP_DEVICES = ("term-a", "term-b", "term-c", "term-d")


def _bridge_main(config: str, log_path: str) -> None:
    """``tack bridge run --config`` in a process forked from a server that has imported Tack
    already, so ten restarts do not pay ten interpreter starts."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from cloud_bridge.cli import app

    app(["run", "--config", config])


@pytest.fixture
def forked() -> Iterator[list[multiprocessing.process.BaseProcess]]:
    procs: list[multiprocessing.process.BaseProcess] = []
    yield procs
    for proc in procs:
        if proc.is_alive():
            proc.kill()
        proc.join(STOP_TIMEOUT_S)


async def test_sigkill_at_random_points_of_a_catch_up_ten_times(
    backend: BackendServer,
    tmp_path: Path,
    spawn: list[subprocess.Popen[bytes]],
    forked: list[multiprocessing.process.BaseProcess],
) -> None:
    """A queue of 300 is caught up by bridges killed one after another at random moments
    (mid-call, mid-commit, between rounds); the last one finishes. The backend ends with
    each record once, each device's records in sequence order."""
    rng = random.Random(6)  # fixed, so a failure can be replayed
    backend.state.set_rate_limit(200)
    backend.state.set_faults(Faults(latency_ms=3))
    config = bridge_toml(tmp_path, backend.base_url, rate_per_s=120, batch_size=20)
    db_path = load_settings(config).db_path
    per_device = CATCHUP_RECORDS // len(CATCHUP_DEVICES)
    keys = [
        key
        for dev in CATCHUP_DEVICES
        for key in await insert_records(
            db_path, [f"u{i % 20 + 1:04d}" for i in range(per_device)], device_id=dev
        )
    ]
    log_path = tmp_path / "bridge.log"
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "cloud_bridge.cli"])

    for _ in range(KILLS):
        before = backend.state.snapshot()["submissions"]
        proc = ctx.Process(target=_bridge_main, args=(str(config), str(log_path)))
        proc.start()
        forked.append(proc)

        async def uploading(
            proc: multiprocessing.process.BaseProcess = proc, before: int = before
        ) -> bool:
            assert proc.is_alive(), log_path.read_text()
            return backend.state.snapshot()["submissions"] > before

        await eventually(uploading, "the bridge uploading")
        await asyncio.sleep(rng.uniform(0.0, 0.25))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.join, STOP_TIMEOUT_S)
        assert proc.exitcode == -signal.SIGKILL

    assert not await all_synced(db_path, keys), "the catch-up ended before the last kill"
    last = start_bridge(config, log_path, spawn)
    await eventually(lambda: all_synced(db_path, keys), "caught up after the kills")
    last.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(last.wait, STOP_TIMEOUT_S) == 0, log_path.read_text()

    records = backend.state.records()
    assert sorted(r["idempotency_key"] for r in records) == sorted(keys)
    assert all(r["stored"] == 1 for r in records)
    for dev in CATCHUP_DEVICES:
        arrived = [r["idempotency_key"] for r in records if r["device_id"] == dev]
        assert arrived == sorted(arrived)  # m000001, m000002, ...: sequence order
