"""The audit chain on a real store file: entries append in order from two processes' worth of
connections, and every kind of tampering a person with the database file could try is named by
``tack audit verify``, which exits 1 for it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit import AuditLog
from gateway.cli import app
from gateway.config import load_settings
from gateway.store import open_database


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tack.toml"
    path.write_text(f'site = "hq"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return path


def _seed(config: Path, n: int) -> None:
    async def main() -> None:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            log = AuditLog(db, settings.audit_head_file)
            for i in range(n):
                await log.append("alice", "device.revoke", f"term-{i}", {"why": "lost"})
        finally:
            await db.close()

    asyncio.run(main())


def _db(config: Path) -> Path:
    return load_settings(config).db_path


def _verify(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--config", str(config)])
    return result.exit_code, result.output


def test_an_untouched_log_verifies(config: Path) -> None:
    _seed(config, 5)
    code, out = _verify(config)
    assert code == 0, out
    assert "5 entries" in out


def test_an_edited_entry_is_named(config: Path) -> None:
    _seed(config, 5)
    with sqlite3.connect(_db(config)) as con:
        con.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
    code, out = _verify(config)
    assert code == 1
    assert "entry 3" in out
    assert "changed" in out


def test_an_entry_deleted_from_the_middle_is_named(config: Path) -> None:
    _seed(config, 5)
    with sqlite3.connect(_db(config)) as con:
        con.execute("DELETE FROM audit_log WHERE id = 2")
    code, out = _verify(config)
    assert code == 1
    assert "2..2 are missing" in out


def test_deleting_the_newest_entries_is_caught_by_the_head_file(config: Path) -> None:
    _seed(config, 5)
    with sqlite3.connect(_db(config)) as con:
        con.execute("DELETE FROM audit_log WHERE id >= 4")
    code, out = _verify(config)
    assert code == 1
    assert "newest entries were deleted" in out


def test_a_rewritten_chain_does_not_match_the_head_file(config: Path) -> None:
    """Recomputing every hash after an edit makes the chain whole again, but not the same."""
    from gateway.audit.chain import GENESIS, entry_hash

    _seed(config, 3)
    with sqlite3.connect(_db(config)) as con:
        rows = con.execute(
            "SELECT id, ts_ms, actor, action, target, detail FROM audit_log ORDER BY id"
        ).fetchall()
        prev = GENESIS
        for entry_id, ts, _actor, action, target, detail in rows:
            digest = entry_hash(prev, entry_id, ts, "mallory", action, target, detail)
            con.execute(
                "UPDATE audit_log SET actor = 'mallory', prev_hash = ?, hash = ? WHERE id = ?",
                (prev, digest, entry_id),
            )
            prev = digest
    code, out = _verify(config)
    assert code == 1
    assert "entry 3" in out
    assert "head file" in out


def test_a_detail_that_looks_like_a_secret_is_refused(config: Path) -> None:
    async def main() -> None:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            with pytest.raises(ValueError, match="password"):
                await AuditLog(db, None).append("alice", "account.create", "bob", {"password": "x"})
        finally:
            await db.close()

    asyncio.run(main())


def test_an_action_and_its_entry_commit_together_or_not_at_all(config: Path) -> None:
    async def main() -> tuple[int, int]:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            log = AuditLog(db, settings.audit_head_file)

            async def failing() -> None:
                async with log.recording("alice", "device.revoke", "term-1"):
                    await db.execute("UPDATE devices SET revoked = 1")
                    raise RuntimeError("the action failed half way")

            with pytest.raises(RuntimeError):
                await failing()
            async with log.recording("alice", "kv.set", "k"):
                await db.execute("INSERT INTO kv (key, value) VALUES ('k', 'v')")
            async with db.execute("SELECT count(*) FROM audit_log") as cur:
                entries = (await cur.fetchone() or (0,))[0]
            async with db.execute("SELECT count(*) FROM kv WHERE key = 'k'") as cur:
                kv = (await cur.fetchone() or (0,))[0]
            return entries, kv
        finally:
            await db.close()

    assert asyncio.run(main()) == (1, 1)


def test_two_connections_appending_at_once_keep_one_chain(config: Path) -> None:
    async def writer(name: str) -> None:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            log = AuditLog(db, settings.audit_head_file)
            for i in range(20):
                await log.append(name, "test.write", str(i))
        finally:
            await db.close()

    async def main() -> None:
        await writer("setup")  # create the file before two connections race for it
        await asyncio.gather(writer("a"), writer("b"))

    asyncio.run(main())
    code, out = _verify(config)
    assert code == 0, out
    assert "60 entries" in out


def test_export_writes_every_entry_with_its_hash(config: Path, tmp_path: Path) -> None:
    _seed(config, 3)
    out = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(app, ["audit", "export", "-o", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [e["id"] for e in lines] == [1, 2, 3]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[2]["target"] == "term-2"
    csv_out = tmp_path / "audit.csv"
    result = CliRunner().invoke(
        app, ["audit", "export", "-o", str(csv_out), "--format", "csv", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert csv_out.read_text(encoding="utf-8").count("\n") == 4


def test_a_missing_or_garbled_head_file_is_reported(config: Path) -> None:
    """Deleting the head file with the newest entries must not pass as a whole log."""
    _seed(config, 3)
    head = load_settings(config).audit_head_file
    head.write_text("not a head\n", encoding="ascii")
    code, out = _verify(config)
    assert code == 1
    assert "unreadable or was altered" in out
    head.unlink()
    with sqlite3.connect(_db(config)) as con:
        con.execute("DELETE FROM audit_log WHERE id = 3")
    code, out = _verify(config)
    assert code == 1
    assert "head file" in out
    assert "missing" in out


def test_an_empty_log_without_a_head_file_verifies(config: Path) -> None:
    asyncio.run(_open_close(config))
    code, out = _verify(config)
    assert code == 0, out
    assert "0 entries" in out


async def _open_close(config: Path) -> None:
    db = await open_database(load_settings(config).db_path)
    await db.close()


def test_list_shows_what_was_typed_at_a_login_form_as_text(config: Path) -> None:
    async def main() -> None:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            await AuditLog(db, settings.audit_head_file).append("web:-", "login.fail", "[/]")
        finally:
            await db.close()

    asyncio.run(main())
    result = CliRunner().invoke(app, ["audit", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "[/]" in result.output
