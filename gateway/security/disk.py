"""Leaving no clear copy behind: what SQLite keeps of a row after it is changed or deleted.

An UPDATE or DELETE frees the old bytes but leaves them in the page until the space is reused,
and the WAL keeps old page images until a checkpoint. Sealing rows again (rotation) or purging
them (retention) is only worth something if the clear text is gone from the disk too: these
connections zero freed space (``secure_delete``) and checkpoint the WAL when they are done.
"""

from __future__ import annotations

import aiosqlite


async def scrub_freed_space(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA secure_delete = ON") as cur:
        await cur.fetchall()


async def checkpoint(db: aiosqlite.Connection) -> None:
    """Copy the WAL into the file and empty it; a reader still inside the WAL (the running
    gateway) makes this partial, and its next checkpoint finishes the job."""
    async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
        await cur.fetchall()
