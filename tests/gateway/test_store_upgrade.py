"""Upgrading a store: processes that open an old file at the same moment (the gateway, the
bridge, the CLI) all come up, and a step that adds a column runs once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.store import open_database
from gateway.store.schema import _STEPS, SCHEMA_VERSION, _statements


def _at_version(path: Path, version: int) -> None:
    """A store as an older Tack left it: the first ``version`` steps, no more."""
    with sqlite3.connect(path, isolation_level=None) as con:
        con.execute("PRAGMA journal_mode = WAL")
        for number, ddl in enumerate(_STEPS[:version], start=1):
            for statement in _statements(ddl):
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {number}")


async def test_three_processes_opening_an_old_store_at_once_all_come_up(tmp_path: Path) -> None:
    path = tmp_path / "tack.db"
    _at_version(path, 6)  # before v7 and v10, which add columns

    async def opened() -> int:
        db = await open_database(path)
        try:
            async with db.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            return int(row[0]) if row else 0
        finally:
            await db.close()

    assert await asyncio.gather(opened(), opened(), opened()) == [SCHEMA_VERSION] * 3
    with sqlite3.connect(path) as con:
        columns = [r[1] for r in con.execute("PRAGMA table_info(records)")]
    assert columns.count("sealed") == 1
