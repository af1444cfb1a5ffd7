"""A store holding every kind of sealed data, and ways to look at it as an attacker would."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from devices.protocol import Frame
from gateway.config import TackSettings, load_settings
from gateway.security.keyring import keyring_for
from gateway.security.sealed_fields import open_record
from gateway.store import open_database
from gateway.store.frames import store_frame
from gateway.store.records import NewRecord, RecordWriter, SyncState, now_ms

CARD = "CARD-7731-0042"
LAT_E7, LON_E7 = 312304017, 1214737000  # a GPS fix as the wire carries it
JPEG = b"\xff\xd8\xff\xe0JFIF-" + bytes(range(256)) * 64 + b"\xff\xd9"


def settings_in(tmp_path: Path, **over: Any) -> TackSettings:
    return load_settings(None, data_dir=str(tmp_path / "data"), **over)


def punch(
    n: int,
    *,
    device_id: str = "term-01",
    card: str = CARD,
    sync_state: str = SyncState.PENDING,
    received_ts_ms: int | None = None,
) -> NewRecord:
    ts = now_ms() if received_ts_ms is None else received_ts_ms
    return NewRecord(
        device_id=device_id,
        msg_id=f"m{n}",
        seq=n,
        kind="punch",
        device_ts_ms=ts,
        received_ts_ms=ts,
        person_id="u001",
        credential=card,
        body={"card": card, "gps": {"lat": LAT_E7, "lon": LON_E7, "acc": 5}, "photo": {"len": 9}},
        status="accepted",
        reason="ok",
        verdict={"ok": True, "text": "Welcome"},
        sync_state=sync_state,
    )


async def write_records(settings: TackSettings, records: list[NewRecord]) -> None:
    db = await open_database(settings.db_path)
    try:
        async with RecordWriter(
            db, max_batch=100, max_pending=10_000, keyring=keyring_for(settings)
        ) as writer:
            for fut in [writer.submit(r) for r in records]:
                await fut
    finally:
        await db.close()


async def fill_store(settings: TackSettings, *, records: int = 20, frames: int = 3) -> None:
    """Records, camera frames and face templates, all sealed with the current key."""
    from gateway.verify.face.templates import TemplateStore

    await write_records(settings, [punch(i) for i in range(records)])
    ring = keyring_for(settings)
    db = await open_database(settings.db_path)
    try:
        for i in range(frames):
            digest = hashlib.sha256(JPEG).hexdigest()
            await store_frame(db, Frame("term-01", f"m{i}", digest, JPEG), ring)
        rng = np.random.default_rng(7)
        await TemplateStore(db, ring).add("u001", [rng.normal(size=128)], source="cli")
    finally:
        await db.close()


def raw_bytes(db_path: Path) -> bytes:
    """Everything SQLite keeps on disk for the store: the file, its WAL and its shared memory."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db_path) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def read_punches(settings: TackSettings) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """msg id -> (credential, body), read back through the one decrypting path."""
    ring = keyring_for(settings)
    with sqlite3.connect(settings.db_path) as db:
        rows = db.execute(
            "SELECT device_id, msg_id, key_id, sealed, credential, body FROM records"
        ).fetchall()
    return {row[1]: open_record(ring, *row) for row in rows}


def key_ids(db_path: Path) -> set[str | None]:
    with sqlite3.connect(db_path) as db:
        out: set[str | None] = set()
        for table in ("records", "frames", "face_templates"):
            out |= {r[0] for r in db.execute(f"SELECT DISTINCT key_id FROM {table}")}
        return out


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
