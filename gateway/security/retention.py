"""Retention: personal data goes when it is older than configured, and nothing unsent goes.

``retention.face_images_days`` removes camera frames by the time they arrived.
``retention.records_days`` removes records by the time they arrived, but only records whose
journey is over: ``synced`` (the backend has them) and ``local`` (refused at the gateway, room
events, queries: never meant for upload). A ``pending`` record is never removed, however old,
and neither is a dead letter (``failed``): the backend refused it and nobody has decided yet
(`tack records --retry-failed`); it goes once it is retried and uploaded. A removed record takes
its camera frame with it.

Deletes run in small batches, each its own short transaction, so the gateway keeps committing
punches in between. Each purge is audited as ``retention.purge`` with its counts and cut-offs.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from gateway.audit.chain import AuditLog
from gateway.config import TackSettings
from gateway.security.disk import checkpoint, scrub_freed_space
from gateway.store import open_database
from gateway.store.database import write_transaction
from gateway.store.records import SyncState, now_ms

DAY_MS = 86_400_000
BATCH_ROWS = 1000
PURGEABLE_STATES = (SyncState.SYNCED, SyncState.LOCAL)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    frames: int
    records: int
    records_cutoff_ms: int | None  # None: that kind is kept for ever
    frames_cutoff_ms: int | None
    dry_run: bool


def cutoffs(settings: TackSettings, at_ms: int) -> tuple[int | None, int | None]:
    """``(records cut-off, frames cut-off)`` in UTC ms; None where the setting is 0."""
    r = settings.retention
    rec = at_ms - r.records_days * DAY_MS if r.records_days else None
    fr = at_ms - r.face_images_days * DAY_MS if r.face_images_days else None
    return rec, fr


async def purge(
    settings: TackSettings, *, actor: str, dry_run: bool = False, at_ms: int | None = None
) -> PurgeResult:
    """Purge what the settings allow (or only count it, with ``dry_run``)."""
    rec_cut, fr_cut = cutoffs(settings, now_ms() if at_ms is None else at_ms)
    db = await open_database(settings.db_path)
    try:
        await scrub_freed_space(db)
        if dry_run:
            frames = await _count_frames(db, fr_cut, rec_cut)
            records = await _count_records(db, rec_cut)
            return PurgeResult(frames, records, rec_cut, fr_cut, True)
        frames = records = 0
        if rec_cut is not None:
            r, f = await _purge_records(db, rec_cut)
            records += r
            frames += f
        if fr_cut is not None:
            frames += await _purge_frames(db, fr_cut)
        if rec_cut is not None or fr_cut is not None:
            await AuditLog(db, settings.audit_head_file).append(
                actor,
                "retention.purge",
                str(settings.db_path.name),
                {
                    "records": records,
                    "frames": frames,
                    "records_cutoff_ms": rec_cut,
                    "frames_cutoff_ms": fr_cut,
                },
            )
        await checkpoint(db)
        return PurgeResult(frames, records, rec_cut, fr_cut, False)
    finally:
        await db.close()


_STATES_SQL = ", ".join(f"'{s}'" for s in PURGEABLE_STATES)


async def _purge_records(db: aiosqlite.Connection, cutoff: int) -> tuple[int, int]:
    records = frames = 0
    while True:
        async with write_transaction(db, "purging old records"):
            async with db.execute(
                f"SELECT id, device_id, msg_id FROM records WHERE received_ts_ms < ?"
                f" AND sync_state IN ({_STATES_SQL}) LIMIT ?",
                (cutoff, BATCH_ROWS),
            ) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                return records, frames
            cur2 = await db.executemany(
                "DELETE FROM frames WHERE device_id = ? AND msg_id = ?",
                [(r[1], r[2]) for r in rows],
            )
            frames += max(cur2.rowcount, 0)
            await db.executemany("DELETE FROM records WHERE id = ?", [(r[0],) for r in rows])
            records += len(rows)


async def _purge_frames(db: aiosqlite.Connection, cutoff: int) -> int:
    total = 0
    while True:
        async with write_transaction(db, "purging old camera frames"):
            cur = await db.execute(
                "DELETE FROM frames WHERE rowid IN (SELECT rowid FROM frames"
                " WHERE received_ts_ms < ? LIMIT ?)",
                (cutoff, BATCH_ROWS),
            )
            n = cur.rowcount
        if n <= 0:
            return total
        total += n


async def _count_records(db: aiosqlite.Connection, cutoff: int | None) -> int:
    if cutoff is None:
        return 0
    async with db.execute(
        f"SELECT count(*) FROM records WHERE received_ts_ms < ? AND sync_state IN ({_STATES_SQL})",
        (cutoff,),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _count_frames(
    db: aiosqlite.Connection, frames_cut: int | None, records_cut: int | None
) -> int:
    """Frames old enough themselves, or belonging to a record that would go."""
    clauses, args = [], []
    if frames_cut is not None:
        clauses.append("f.received_ts_ms < ?")
        args.append(frames_cut)
    if records_cut is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM records r WHERE r.device_id = f.device_id AND r.msg_id ="
            f" f.msg_id AND r.received_ts_ms < ? AND r.sync_state IN ({_STATES_SQL}))"
        )
        args.append(records_cut)
    if not clauses:
        return 0
    async with db.execute(
        f"SELECT count(*) FROM frames f WHERE {' OR '.join(clauses)}", args
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
