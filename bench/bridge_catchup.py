"""Catch-up after an outage: a queue of records drained through the cloud bridge.

Two measures, each with the bridge and the backend simulator as separate processes over
loopback HTTP, the store a real SQLite file (synchronous=FULL):

- batch: 100,000 queued records (half today, half yesterday's backlog, 50 terminals) drained
  through the WeCom-style adapter (100 records a call). The rate limit is lifted on both sides,
  so this measures what the bridge's pipeline (store -> HTTP -> store) can do; at the declared
  20 calls/s the floor would be 100,000 / (100 x 20) = 50 s.
- one-per-call: the DingTalk-style adapter (one record a call) against its rate limit, for a
  fixed window from the first stored record (100,000 at 20 calls/s would take 83 minutes).
  It runs at the declared 20 calls/s and again with both sides raised to 200 calls/s. What
  counts: calls/s kept up as a share of the limit, and the simulator's count of calls it
  refused as over the limit (errcode 90002), which must be 0.

Writes ``bench/bridge_catchup.json`` and ``bench/bridge_catchup.md``. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.store.database import open_database
from gateway.store.records import NewRecord, RecordWriter, SyncState, now_ms
from tests.fixtures.processes import write_toml

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "bridge_catchup.json"
TABLE = Path(__file__).parent / "bridge_catchup.md"
DEVICES = 50
PEOPLE = 50
INSERT_CHUNK = 5000
DAY_MS = 24 * 3600 * 1000
POLL_S = 0.2
UNLIMITED_PER_S = 100_000.0  # far above anything the loopback pipeline reaches


@dataclass
class DrainResult:
    name: str
    records: int
    seconds: float  # first record at the backend -> queue empty
    records_per_s: float
    calls: int
    rate_limited: int
    bridge_peak_rss_mib: float


@dataclass
class PaceResult:
    name: str
    limit_per_s: int
    window_s: float
    calls: int
    calls_per_s: float
    share_of_limit: float
    rate_limited: int
    bridge_peak_rss_mib: float


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def queue_records(db_path: Path, n: int) -> None:
    """``n`` pending punches over :data:`DEVICES` terminals: half today, half yesterday."""
    db = await open_database(db_path, synchronous="normal")
    start_ms = now_ms() - DAY_MS
    try:
        async with RecordWriter(db, max_batch=INSERT_CHUNK, max_pending=INSERT_CHUNK) as writer:
            for first in range(0, n, INSERT_CHUNK):
                futures = []
                for i in range(first, min(n, first + INSERT_CHUNK)):
                    device, seq = f"term-{i % DEVICES:02d}", i // DEVICES + 1
                    futures.append(
                        writer.submit(
                            NewRecord(
                                device_id=device,
                                msg_id=f"m{seq:07d}",
                                seq=seq,
                                kind="punch",
                                device_ts_ms=start_ms + i * (DAY_MS // n),
                                received_ts_ms=now_ms(),
                                person_id=f"u{i % PEOPLE + 1:04d}",
                                credential=None,
                                body={},
                                status="accepted",
                                reason="ok",
                                verdict={"ok": True},
                                sync_state=SyncState.PENDING,
                            )
                        )
                    )
                await asyncio.gather(*futures)
    finally:
        await db.close()


def pending(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as conn:
        row = conn.execute("SELECT count(*) FROM records WHERE sync_state = 'pending'").fetchone()
    return int(row[0])


class Processes:
    """The simulator and the bridge as child processes; both stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TACK_")}
        with (self.workdir / log).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=REPO, env=env, stdout=out, stderr=out
            )
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_simulator(procs: Processes, port: int, limit: int) -> str:
    procs.start(
        "simulators.backend.cli",
        "serve",
        "--port",
        str(port),
        "--people",
        str(PEOPLE),
        "--rate-limit",
        str(limit),
        log="backend.log",
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/_sim/state", timeout=1).raise_for_status()
            return base
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start; see backend.log") from None
            time.sleep(0.1)


def sim_state(base: str) -> dict[str, Any]:
    return dict(httpx.get(base + "/_sim/state", timeout=10).json())


def bridge_config(workdir: Path, base: str, **bridge: Any) -> Path:
    return write_toml(
        workdir / "tack.toml",
        {
            "data_dir": str(workdir),
            "log": {"level": "WARNING"},
            "bridge": {"base_url": base, "interval_s": 0.2, "roster_interval_s": 3600, **bridge},
        },
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_batch(n: int) -> DrainResult:
    with tempfile.TemporaryDirectory(prefix="tack-bench-") as tmp, Processes(Path(tmp)) as procs:
        workdir = Path(tmp)
        base = start_simulator(procs, free_port(), 0)
        # rate_per_s = 0 would mean "the adapter's declared 20 calls/s": lift it instead.
        config = bridge_config(
            workdir, base, adapter="wecom", batch_size=1000, rate_per_s=UNLIMITED_PER_S
        )
        db_path = workdir / "tack.db"
        asyncio.run(queue_records(db_path, n))
        bridge = procs.start("cloud_bridge.cli", "run", "--config", str(config), log="bridge.log")
        while sim_state(base)["records"] == 0:
            if bridge.poll() is not None:
                raise RuntimeError((workdir / "bridge.log").read_text())
            time.sleep(0.01)
        started = time.monotonic()
        while pending(db_path):
            time.sleep(POLL_S)
        seconds = time.monotonic() - started
        rss = _peak_rss_mib(bridge.pid)
        state = sim_state(base)
        if state["records"] != n:
            raise RuntimeError(f"backend holds {state['records']} records, not {n}")
        return DrainResult(
            "batch (WeCom-style, 100 a call, limits lifted)",
            n,
            seconds,
            n / seconds,
            state["calls"]["batch_upload"],
            sum(state["rate_limited"].values()),
            rss,
        )


def run_paced(limit: int, window_s: float) -> PaceResult:
    queued = int(limit * window_s * 1.5) + 1000
    with tempfile.TemporaryDirectory(prefix="tack-bench-") as tmp, Processes(Path(tmp)) as procs:
        workdir = Path(tmp)
        base = start_simulator(procs, free_port(), limit)
        config = bridge_config(
            workdir, base, adapter="dingtalk", batch_size=400, concurrency=16, rate_per_s=limit
        )
        asyncio.run(queue_records(workdir / "tack.db", queued))
        bridge = procs.start("cloud_bridge.cli", "run", "--config", str(config), log="bridge.log")
        while (first := sim_state(base))["records"] == 0:
            if bridge.poll() is not None:
                raise RuntimeError((workdir / "bridge.log").read_text())
            time.sleep(0.01)
        started = time.monotonic()
        time.sleep(window_s)
        last = sim_state(base)
        seconds = time.monotonic() - started
        calls = last["calls"]["upload"] - first["calls"]["upload"]
        return PaceResult(
            f"one-per-call (DingTalk-style) at {limit} calls/s",
            limit,
            seconds,
            calls,
            calls / seconds,
            calls / seconds / limit,
            sum(last["rate_limited"].values()),
            _peak_rss_mib(bridge.pid),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--window-s", type=float, default=30.0)
    args = parser.parse_args()

    print(f"batch: draining {args.records:,} queued records ...", flush=True)
    batch = run_batch(args.records)
    print(f"  {batch.seconds:.1f} s, {batch.records_per_s:,.0f} records/s", flush=True)
    paced = []
    for limit in (20, 200):
        print(f"one-per-call: {args.window_s:.0f} s at {limit} calls/s ...", flush=True)
        paced.append(run_paced(limit, args.window_s))
        p = paced[-1]
        print(f"  {p.calls_per_s:.1f} calls/s ({p.share_of_limit:.1%}), {p.rate_limited} refused")

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "batch": asdict(batch),
        "batch_target_s": 10.0,
        "paced": [asdict(p) for p in paced],
        "paced_target_share": 0.95,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    TABLE.write_text(
        "| catch-up | records | time | records/s | calls | refused over the limit | "
        "bridge peak RSS |\n|---|---|---|---|---|---|---|\n"
        f"| {batch.name} | {batch.records:,} | {batch.seconds:.1f} s | "
        f"{batch.records_per_s:,.0f} | {batch.calls:,} | {batch.rate_limited} | "
        f"{batch.bridge_peak_rss_mib:.0f} MiB |\n"
        "\n| one record a call | window | calls | calls/s | share of the limit | "
        "refused over the limit | bridge peak RSS |\n|---|---|---|---|---|---|---|\n"
        + "".join(
            f"| {p.limit_per_s} calls/s limit | {p.window_s:.0f} s from the first stored record "
            f"| {p.calls:,} | {p.calls_per_s:.1f} | {p.share_of_limit:.1%} | {p.rate_limited} | "
            f"{p.bridge_peak_rss_mib:.0f} MiB |\n"
            for p in paced
        )
    )
    print(TABLE.read_text())
    ok = batch.rate_limited == 0 and all(p.rate_limited == 0 for p in paced)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
