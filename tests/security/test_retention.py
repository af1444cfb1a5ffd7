"""Retention: old finished records and old frames go, anything not yet uploaded stays, and each
purge is audited."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.protocol import Frame
from gateway.audit import AuditLog
from gateway.cli import app
from gateway.security.keyring import keyring_for
from gateway.security.retention import DAY_MS, purge
from gateway.store import open_database
from gateway.store.frames import store_frame
from gateway.store.records import SyncState, now_ms
from tests.security.helpers import JPEG, punch, settings_in, write_records

NOW = now_ms()
OLD = NOW - 40 * DAY_MS
RECENT = NOW - 5 * DAY_MS


def _left(db_path: Path) -> tuple[list[str], list[str]]:
    with sqlite3.connect(db_path) as db:
        records = [r[0] for r in db.execute("SELECT msg_id FROM records ORDER BY msg_id")]
        frames = [r[0] for r in db.execute("SELECT msg_id FROM frames ORDER BY msg_id")]
    return records, frames


async def _store(tmp_path: Path, **retention: int) -> Path:
    settings = settings_in(tmp_path, retention=retention)
    # m0..m5: old, in every sync state; m6: recent and synced.
    states = [
        SyncState.SYNCED,
        SyncState.LOCAL,
        SyncState.PENDING,
        SyncState.FAILED,
        SyncState.SYNCED,
        SyncState.PENDING,
    ]
    records = [punch(i, sync_state=s, received_ts_ms=OLD) for i, s in enumerate(states)]
    records.append(punch(6, sync_state=SyncState.SYNCED, received_ts_ms=RECENT))
    await write_records(settings, records)
    db = await open_database(settings.db_path)
    try:
        for i in (0, 2, 6):
            frame = Frame("term-01", f"m{i}", hashlib.sha256(JPEG).hexdigest(), JPEG)
            await store_frame(db, frame, keyring_for(settings))
        await db.execute("UPDATE frames SET received_ts_ms = ? WHERE msg_id != 'm6'", (OLD,))
    finally:
        await db.close()
    return settings.db_path


async def test_records_purge_keeps_pending_and_dead_letters_and_is_audited(
    tmp_path: Path,
) -> None:
    db_path = await _store(tmp_path, records_days=30)
    settings = settings_in(tmp_path, retention={"records_days": 30})
    dry = await purge(settings, actor="cli:test", dry_run=True, at_ms=NOW)
    assert (dry.records, dry.frames) == (3, 1)
    assert _left(db_path)[0] == [f"m{i}" for i in range(7)]  # a dry run changes nothing

    result = await purge(settings, actor="cli:test", at_ms=NOW)
    assert (result.records, result.frames) == (3, 1)
    records, frames = _left(db_path)
    assert records == ["m2", "m3", "m5", "m6"]  # pending, dead letter, pending, recent
    assert frames == ["m2", "m6"]  # m0's frame went with its record
    db = await open_database(db_path)
    try:
        [entry] = await AuditLog(db, settings.audit_head_file).entries(action="retention.purge")
    finally:
        await db.close()
    assert entry.detail == {
        "records": 3,
        "frames": 1,
        "records_cutoff_ms": NOW - 30 * DAY_MS,
        "frames_cutoff_ms": None,
    }


async def test_face_images_purge_removes_old_frames_only(tmp_path: Path) -> None:
    db_path = await _store(tmp_path, face_images_days=7)
    settings = settings_in(tmp_path, retention={"face_images_days": 7})
    result = await purge(settings, actor="gateway", at_ms=NOW)
    assert (result.records, result.frames) == (0, 2)
    records, frames = _left(db_path)
    assert len(records) == 7
    assert frames == ["m6"]


async def test_nothing_is_purged_or_audited_when_everything_is_kept_for_ever(
    tmp_path: Path,
) -> None:
    db_path = await _store(tmp_path)
    settings = settings_in(tmp_path)
    result = await purge(settings, actor="gateway", at_ms=NOW)
    assert (result.records, result.frames) == (0, 0)
    assert _left(db_path) == ([f"m{i}" for i in range(7)], ["m0", "m2", "m6"])
    db = await open_database(db_path)
    try:
        assert await AuditLog(db, settings.audit_head_file).entries() == []
    finally:
        await db.close()


def test_retention_purge_dry_run_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    db_path = asyncio.run(_store(tmp_path))
    monkeypatch.setenv("TACK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TACK_RETENTION__RECORDS_DAYS", "30")
    result = CliRunner().invoke(app, ["retention", "purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 3 record(s)" in result.output
    assert len(_left(db_path)[0]) == 7
