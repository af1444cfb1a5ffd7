"""Roster down-sync: how soon a change made at the backend (a new card, a rename, a leaver
marked inactive) reaches the gateway's store, and what each roster pass costs, with every pass
a full one (``bridge.roster_full_every = 1``) against passes that ask only for changes.

The backend simulator over HTTP holds ``--people`` people; the real bridge runs with
``roster_interval_s = 1``. One person at a time is renamed at the backend, and the time until
the store shows the new name is measured (it includes the wait for the next pass, so an ideal
pass gives about 0.5 s on average).

Writes ``bench/downsync.json`` and ``bench/downsync.md``. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud_bridge.runner import Bridge
from gateway.config import load_settings
from simulators.backend import BackendServer, BackendState, demo_roster
from simulators.devices.fleet import percentile

RESULTS = Path(__file__).parent / "downsync.json"
TABLE = Path(__file__).parent / "downsync.md"
POLL_S = 0.005


async def _wait(check: Any, timeout_s: float = 120.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError("the bridge did not get there in time")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - start


def _name(db_path: Path, person_id: str) -> str | None:
    with sqlite3.connect(db_path) as db:
        row = db.execute("SELECT name FROM people WHERE person_id = ?", (person_id,)).fetchone()
    return str(row[0]) if row else None


async def run_mode(
    server: BackendServer, roster: list[dict[str, Any]], full_every: int, changes: int
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tack-bench-downsync-"))
    settings = load_settings(
        None,
        data_dir=work,
        bridge={
            "base_url": server.base_url,
            "roster_interval_s": 1.0,
            "roster_full_every": full_every,
            "interval_s": 1.0,
        },
    )
    async with Bridge(settings) as bridge:
        first_s = await _wait(lambda: bridge.counters.roster_pulls >= 1)
        passes0 = bridge.counters.roster_pulls
        people0 = bridge.counters.people_pulled
        calls0 = server.state.snapshot()["calls"]["user_list"]
        latencies = []
        for i in range(changes):
            person = roster[(i * 997) % len(roster)]
            person["name"] = f"renamed {i} (full every {full_every})"
            server.state.set_roster(roster)
            latencies.append(
                await _wait(lambda p=person: _name(settings.db_path, p["userid"]) == p["name"])
            )
        # Let the pass in progress finish, so the counts below cover whole passes only.
        settled = bridge.counters.roster_pulls
        await _wait(lambda: bridge.counters.roster_pulls > settled)
        passes = bridge.counters.roster_pulls - passes0
        people = bridge.counters.people_pulled - people0
        calls = server.state.snapshot()["calls"]["user_list"] - calls0
    return {
        "full_every": full_every,
        "people": len(roster),
        "first_full_pass_s": round(first_s, 3),
        "changes": changes,
        "latency_p50_s": round(percentile(sorted(latencies), 0.5) or 0.0, 3),
        "latency_max_s": round(max(latencies), 3),
        "passes": passes,
        "people_read_per_pass": round(people / max(passes, 1), 1),
        "user_list_calls_per_pass": round(calls / max(passes, 1), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=8)
    args = parser.parse_args()
    roster = demo_roster(args.people)
    server = BackendServer(BackendState())
    server.state.set_roster(roster)
    rows = []
    with server:
        for full_every in (1, 10):
            rows.append(asyncio.run(run_mode(server, roster, full_every, args.changes)))
    RESULTS.write_text(json.dumps({"roster_downsync": rows}, indent=2) + "\n", encoding="utf-8")
    lines = [
        "| passes | people | first full pass | change seen p50 | max | people read / pass "
        "| user/list calls / pass |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kind = "all full" if r["full_every"] == 1 else f"changes only, full every {r['full_every']}"
        lines.append(
            f"| {kind} | {r['people']} | {r['first_full_pass_s']} s | {r['latency_p50_s']} s "
            f"| {r['latency_max_s']} s | {r['people_read_per_pass']} "
            f"| {r['user_list_calls_per_pass']} |"
        )
    TABLE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
