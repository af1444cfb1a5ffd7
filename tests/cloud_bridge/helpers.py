"""Helpers for bridge tests: records into a real store, settings, and polling for an outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.config import TackSettings, load_settings
from gateway.store.database import open_database
from gateway.store.records import NewRecord, RecordWriter, SyncState, now_ms
from gateway.store.roster import Person, load_people

WAIT_S = 20.0


def bridge_settings(tmp_path: Path, base_url: str, **bridge: Any) -> TackSettings:
    """Settings with a store under ``tmp_path`` and a fast bridge; ``bridge`` overrides."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "interval_s": 0.05,
        "roster_interval_s": 60.0,
        "timeout_s": 5.0,
        "backoff_max_s": 1.0,
        "batch_size": 10,
        "concurrency": 4,
    }
    options.update(bridge)
    return load_settings(None, data_dir=tmp_path, bridge=options)


def bridge_toml(tmp_path: Path, base_url: str, **bridge: Any) -> Path:
    """The same settings written as a TOML file, for a bridge run as a subprocess."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "interval_s": 0.05,
        "roster_interval_s": 60.0,
        "timeout_s": 30.0,
        "backoff_max_s": 1.0,
        "batch_size": 10,
        "concurrency": 4,
    }
    options.update(bridge)
    lines = [f'data_dir = "{tmp_path}"', "", "[bridge]"]
    for key, value in options.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    path = tmp_path / "tack.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def insert_records(
    db_path: Path,
    person_ids: Sequence[str | None],
    *,
    device_id: str = "term-01",
    first_seq: int = 1,
    device_ts_ms: int | None = None,
) -> list[str]:
    """One accepted, pending punch per person id, through the real group-commit writer;
    returns their idempotency keys in insertion order."""
    stamp = device_ts_ms if device_ts_ms is not None else now_ms()
    db = await open_database(db_path)
    try:
        async with RecordWriter(db, max_batch=500, max_pending=10_000) as writer:
            futures = []
            for i, person in enumerate(person_ids):
                seq = first_seq + i
                futures.append(
                    writer.submit(
                        NewRecord(
                            device_id=device_id,
                            msg_id=f"m{seq:06d}",
                            seq=seq,
                            kind="punch",
                            device_ts_ms=stamp + i,
                            received_ts_ms=now_ms(),
                            person_id=person,
                            credential=f"C{seq:04d}",
                            body={"card": f"C{seq:04d}"},
                            status="accepted",
                            reason="ok",
                            verdict={"ok": True, "text": "ok"},
                            sync_state=SyncState.PENDING,
                        )
                    )
                )
            results = await asyncio.gather(*futures)
    finally:
        await db.close()
    assert all(r.inserted for r in results)
    return [f"{device_id}:m{first_seq + i:06d}" for i in range(len(person_ids))]


async def sync_states(db_path: Path) -> dict[str, tuple[str, str | None]]:
    """Idempotency key -> (sync_state, sync_error) for every record in the store."""
    db = await open_database(db_path)
    try:
        async with db.execute(
            "SELECT device_id, msg_id, sync_state, sync_error FROM records"
        ) as cur:
            rows = await cur.fetchall()
    finally:
        await db.close()
    return {f"{d}:{m}": (s, e) for d, m, s, e in rows}


async def people(db_path: Path) -> dict[str, Person]:
    db = await open_database(db_path)
    try:
        return {p.person_id: p for p in await load_people(db)}
    finally:
        await db.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def all_synced(db_path: Path, keys: Sequence[str]) -> bool:
    states = await sync_states(db_path)
    return all(states.get(k, ("", None))[0] == SyncState.SYNCED for k in keys)
