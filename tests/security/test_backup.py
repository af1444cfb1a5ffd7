"""Backups: a round trip with every kind of data, each kind of bad backup refused with nothing
replaced, no restore under a running gateway, and scheduled backups pruned to backup.keep."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.audit import AuditLog
from gateway.cli import app
from gateway.security.backup import (
    MAGIC,
    BackupError,
    _create,
    create_backup,
    list_backups,
    restore_backup,
)
from gateway.security.keyring import Keyring, keyring_for
from gateway.security.schedule import run_scheduled_backup
from gateway.security.store_lock import StoreBusyError
from gateway.store import open_database
from gateway.store.schema import SCHEMA_VERSION
from gateway.verify.face.templates import TemplateStore
from tests.security.helpers import (
    CARD,
    JPEG,
    file_sha,
    fill_store,
    punch,
    raw_bytes,
    read_punches,
    settings_in,
    write_records,
)


async def _counts(db_path: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db_path) as db:
        return tuple(  # type: ignore[return-value]
            int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in ("records", "frames", "face_templates")
        )


async def test_backup_then_restore_brings_back_records_frames_and_templates(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=30, frames=3)
    info = await create_backup(settings, actor="cli:test")
    assert info.path.parent == settings.backup_dir
    assert CARD.encode() not in info.path.read_bytes()  # sealed twice over, never clear
    assert JPEG[200:264] not in info.path.read_bytes()
    assert list_backups(settings) == [info]

    await write_records(settings, [punch(100 + i) for i in range(5)])  # after the backup
    assert (await _counts(settings.db_path))[0] == 35
    result = await restore_backup(settings, info.path, actor="cli:test")

    assert await _counts(settings.db_path) == (30, 3, 1)
    assert all(cred == CARD for cred, _ in read_punches(settings).values())
    assert result.replaced is not None
    assert (await _counts(result.replaced))[0] == 35  # the replaced store is kept aside
    db = await open_database(settings.db_path)
    try:
        templates = await TemplateStore(db, keyring_for(settings)).load()
        log = AuditLog(db, settings.audit_head_file)
        restored = await log.entries(action="backup.restore")
        verified = await log.verify()
    finally:
        await db.close()
    assert len(templates.templates) == 1
    assert [e.target for e in restored] == [info.path.name]
    assert verified.ok, verified.problems  # the restored chain is whole, with a new head


def _tamper(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    head_len = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])[0]
    body_at = len(MAGIC) + 4 + head_len
    if how == "flip":
        data[body_at + 100] ^= 0x01
    elif how == "truncate":
        del data[len(data) - 1000 :]
    elif how == "manifest":
        manifest = json.loads(bytes(data[len(MAGIC) + 4 : body_at]))
        manifest["created_ms"] += 1
        head = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        data[len(MAGIC) + 4 : body_at] = head
        data[len(MAGIC) : len(MAGIC) + 4] = struct.pack(">I", len(head))
    elif how == "empty":
        # A forged "empty store": no chunks at all, an empty file's size and hash, schema 0.
        manifest = json.loads(bytes(data[len(MAGIC) + 4 : body_at]))
        manifest |= {"chunks": 0, "db_size": 0, "schema_version": 0}
        manifest["db_sha256"] = hashlib.sha256(b"").hexdigest()
        head = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        data = bytearray(MAGIC + struct.pack(">I", len(head)) + head)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("flip", "chunk 1 of 1 fails its authentication"),
        ("truncate", "truncated"),
        ("manifest", "the manifest was altered"),
        ("empty", "the manifest was altered"),
    ],
)
async def test_a_damaged_backup_is_refused_and_nothing_is_replaced(
    tmp_path: Path, how: str, message: str
) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=5)
    info = await create_backup(settings, actor="cli:test")
    _tamper(info.path, how)
    await write_records(settings, [punch(50)])
    before = raw_bytes(settings.db_path)

    with pytest.raises(BackupError, match=message) as err:
        await restore_backup(settings, info.path, actor="cli:test")
    assert "nothing was replaced" in err.value.message
    assert raw_bytes(settings.db_path) == before
    assert not list(settings.data_dir.glob("*.replaced-*"))


async def test_a_backup_under_a_key_this_keyring_lacks_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=5)
    info = await create_backup(settings, actor="cli:test")
    other = settings_in(tmp_path / "elsewhere")
    Keyring.load(other.keyring_file)  # a new machine with its own, different keyring
    with pytest.raises(BackupError, match=r"does not hold: set keys\.file"):
        await restore_backup(other, info.path, actor="cli:test")
    assert not other.db_path.exists()


async def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=2)
    newer = tmp_path / "newer.db"  # a store as a later Tack would write it
    with sqlite3.connect(settings.db_path) as src, sqlite3.connect(newer) as dst:
        src.backup(dst)
        dst.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    info = _create(newer, settings.backup_dir, keyring_for(settings))
    sha = file_sha(settings.db_path)
    with pytest.raises(BackupError, match=f"schema {SCHEMA_VERSION + 1}, newer than this Tack"):
        await restore_backup(settings, info.path, actor="cli:test")
    assert file_sha(settings.db_path) == sha


async def test_restore_is_refused_while_a_gateway_runs(
    gateway_factory: Callable[..., Any],
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    info = await create_backup(gw.settings, actor="cli:test")
    with pytest.raises(StoreBusyError, match="a gateway is running on the store"):
        await restore_backup(gw.settings, info.path, actor="cli:test")
    assert not list(gw.settings.data_dir.glob("*.replaced-*"))
    await gw.__aexit__(None, None, None)  # stopped: now the same restore goes through
    result = await restore_backup(gw.settings, info.path, actor="cli:test")
    assert result.replaced is not None


async def test_scheduled_backups_are_pruned_to_backup_keep(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, backup={"keep": 2})
    await fill_store(settings, records=2)
    for _ in range(4):
        await run_scheduled_backup(settings)
        await asyncio.sleep(0.01)  # distinct creation times
    kept = list_backups(settings)
    assert len(kept) == 2
    assert sorted(settings.backup_dir.iterdir()) == sorted(b.path for b in kept)
    db = await open_database(settings.db_path)
    try:
        log = AuditLog(db, settings.audit_head_file)
        created = await log.entries(action="backup.create", actor="gateway")
        pruned = await log.entries(action="backup.prune", actor="gateway")
    finally:
        await db.close()
    assert len(created) == 4
    deleted = [name for e in pruned for name in e.detail["deleted"]]  # type: ignore[attr-defined]
    assert len(deleted) == 2


def test_backup_commands_create_list_verify_and_refuse_a_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_in(tmp_path)
    asyncio.run(fill_store(settings, records=2))
    monkeypatch.setenv("TACK_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    made = runner.invoke(app, ["backup", "create"])
    assert made.exit_code == 0, made.output
    [info] = list_backups(settings)
    listed = runner.invoke(app, ["backup", "list"])
    assert "1 backup(s)" in listed.output
    ok = runner.invoke(app, ["backup", "verify", info.path.name])
    assert ok.exit_code == 0, ok.output
    assert "is sound" in ok.output
    _tamper(info.path, "truncate")
    bad = runner.invoke(app, ["backup", "restore", "--yes", info.path.name])
    assert bad.exit_code == 1
    assert "truncated" in bad.output
    assert "Traceback" not in bad.output


async def test_a_new_machine_restores_with_a_copy_of_the_keyring_and_not_without(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path / "old-machine")
    await fill_store(settings, records=4)
    info = await create_backup(settings, actor="cli:test")
    new = settings_in(tmp_path / "new-machine")

    with pytest.raises(BackupError, match="copy your saved keyring file there"):
        await restore_backup(new, info.path, actor="cli:test")
    assert not new.keyring_file.exists()  # no stray key made up on the spot
    assert not new.db_path.exists()

    new.keyring_file.parent.mkdir(parents=True)
    shutil.copy(settings.keyring_file, new.keyring_file)
    result = await restore_backup(new, info.path, actor="cli:test")
    assert result.replaced is None  # there was no store to keep aside
    assert {cred for cred, _ in read_punches(new).values()} == {CARD}
