"""Opening the store: WAL, the chosen ``synchronous`` level, an optional size cap.

``synchronous=FULL`` in WAL mode makes a commit durable across power loss, which is what lets
the gateway acknowledge a punch the moment its transaction commits. ``max_page_count`` turns a
configured size cap into SQLite's own "database or disk is full" error, the same error a full
disk gives, so both take one code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.store.errors import StoreError, StoreFullError
from gateway.store.schema import migrate

BUSY_TIMEOUT_MS = 10_000  # the bridge and the CLI write too; wait rather than fail


def map_sqlite_error(exc: sqlite3.Error, action: str) -> StoreError:
    """Translate a sqlite3 error into Tack's vocabulary, keeping the cause."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "full" in str(exc):
        err: StoreError = StoreFullError(
            f"{action}: the store is full ({exc}); free disk space or raise store.max_size_mb"
        )
    else:
        err = StoreError(f"{action}: {exc}")
    err.__cause__ = exc
    return err


async def open_database(
    path: Path, *, synchronous: str = "full", max_size_mb: int = 0
) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await _pragma(db, "journal_mode = WAL")
        await _pragma(db, f"synchronous = {synchronous.upper()}")
        await _pragma(db, f"busy_timeout = {BUSY_TIMEOUT_MS}")
        await migrate(db)
        if max_size_mb:
            page_size = int((await _pragma(db, "page_size"))[0][0])
            await _pragma(db, f"max_page_count = {max_size_mb * 1024 * 1024 // page_size}")
    except sqlite3.Error as exc:
        await db.close()
        raise map_sqlite_error(exc, f"opening {path}") from exc
    except BaseException:
        await db.close()
        raise
    return db


async def _pragma(db: aiosqlite.Connection, statement: str) -> list[tuple[Any, ...]]:
    # Read every row: a pragma that answers with a row and is left unread keeps a read
    # snapshot open, and this connection's next write then fails with SQLITE_BUSY_SNAPSHOT.
    async with db.execute(f"PRAGMA {statement}") as cur:
        return [tuple(r) for r in await cur.fetchall()]


_write_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def write_transaction(db: aiosqlite.Connection, action: str) -> AsyncIterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, one at a time per connection.

    In WAL mode a plain statement starts as a reader and upgrades to a writer; if another
    connection committed in between, SQLite answers SQLITE_BUSY at once, without waiting.
    Taking the write lock up front makes the busy timeout apply instead. The asyncio lock keeps
    two tasks sharing a connection from nesting transactions.
    """
    lock = _write_locks.setdefault(db, asyncio.Lock())
    async with lock:
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, action) from exc


@contextlib.asynccontextmanager
async def joined_transaction(db: aiosqlite.Connection, action: str) -> AsyncIterator[None]:
    """The caller's open transaction if there is one (e.g. ``AuditLog.recording``, so a change
    and its audit entry commit together), else a :func:`write_transaction` of its own."""
    if db.in_transaction:
        yield
        return
    async with write_transaction(db, action):
        yield
