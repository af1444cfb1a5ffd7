"""Key rotation without downtime, and what each key seals.

``tack keys rotate`` makes a new current key and saves the keyring; from then on the running
gateway seals with it (it looks at the keyring file at least once a second while it seals, and
reloads whenever it meets a key id it does not know, so it reads rows under either key). The
rotation then walks each sealed table in rowid order, a small batch per short write transaction,
opening every row not under the new key (rows from before v10, still in the clear, included)
and sealing it again. When a pass finds nothing left, after the gateway has had time to see the
new key, the old keys are marked retired. They stay in the keyring: backups made before the
rotation are sealed with them.

A rotation stopped half way (a crash, Ctrl-C) leaves a keyring whose older key is neither
current nor retired; running the command again sees that and finishes the same rotation instead
of starting another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from gateway.audit.chain import AuditLog
from gateway.config import TackSettings
from gateway.security.disk import checkpoint, scrub_freed_space
from gateway.security.keyring import NONCE_BYTES, RELOAD_CHECK_S, Keyring, SealError
from gateway.security.sealed_fields import (
    open_frame,
    open_record,
    seal_frame,
    seal_record,
    template_aad,
)
from gateway.store import open_database
from gateway.store.database import write_transaction

BATCH_ROWS = 200
CLEAR = "(clear)"  # how rows from before schema v10 show in the counts
TABLES = ("records", "frames", "face_templates")
# What the gateway may still seal with the old key after the file changed: one look at the
# file (RELOAD_CHECK_S) plus a commit in flight.
_SETTLE_S = 2 * RELOAD_CHECK_S + 0.5

Progress = Callable[[str, int, int], None]  # table, rows done, rows to do


class RotationError(SealError):
    """A row could not be opened during the rotation; the message names it."""


@dataclass(slots=True)
class RotationReport:
    new_key: str
    old_keys: list[str]
    resumed: bool
    resealed: dict[str, int] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)


async def key_usage(db: aiosqlite.Connection) -> dict[str, dict[str, int]]:
    """Rows per key id per table; clear rows from before v10 under :data:`CLEAR`."""
    out: dict[str, dict[str, int]] = {}
    for table in TABLES:
        async with db.execute(f"SELECT key_id, count(*) FROM {table} GROUP BY key_id") as cur:
            for kid, n in await cur.fetchall():
                out.setdefault(CLEAR if kid is None else str(kid), {})[table] = int(n)
    return out


async def rotate(
    settings: TackSettings,
    *,
    actor: str,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> RotationReport:
    # Never a new keyring here: a wrong keys.file would make one and then fail on every row.
    ring = Keyring.load(settings.keyring_file, legacy_file=settings.face_key_file, create=False)
    unfinished = ring.active_old_ids()
    if unfinished:
        report = RotationReport(ring.current_id, unfinished, resumed=True)
    else:
        old = ring.current_id
        ring.add_current()
        report = RotationReport(ring.current_id, [old], resumed=False)
    db = await open_database(settings.db_path)
    try:
        await scrub_freed_space(db)
        audit = AuditLog(db, settings.audit_head_file)
        await audit.append(
            actor,
            "keys.rotate.start",
            settings.keyring_file.name,
            {"old": report.old_keys, "new": report.new_key, "resumed": report.resumed},
        )
        while True:
            moved = await _sweep(db, ring, progress, batch_rows)
            for table, n in moved.items():
                report.resealed[table] = report.resealed.get(table, 0) + n
            settle = _key_written_s(ring) + _SETTLE_S - time.time()
            if settle > 0:
                await asyncio.sleep(settle)  # let the gateway pick up the new key, then look again
                continue
            if not any(moved.values()):
                break
        usage = await key_usage(db)
        for kid in ring.active_old_ids():
            if kid not in usage:
                ring.retire(kid)
                report.retired.append(kid)
        await audit.append(
            actor,
            "keys.rotate",
            settings.keyring_file.name,
            {
                "old": report.old_keys,
                "new": report.new_key,
                "resumed": report.resumed,
                "rows": report.resealed,
                "retired": report.retired,
            },
        )
        await checkpoint(db)
    finally:
        await db.close()
    return report


def _key_written_s(ring: Keyring) -> float:
    assert ring.path is not None
    return os.stat(ring.path).st_mtime


async def _sweep(
    db: aiosqlite.Connection, ring: Keyring, progress: Progress | None, batch_rows: int
) -> dict[str, int]:
    moved: dict[str, int] = {}
    current = ring.current_id
    for table in TABLES:
        async with db.execute(
            f"SELECT count(*) FROM {table} WHERE key_id IS NULL OR key_id != ?", (current,)
        ) as cur:
            row = await cur.fetchone()
        todo = int(row[0]) if row else 0
        done, last = 0, 0
        if progress is not None:
            progress(table, 0, todo)
        while True:
            async with write_transaction(db, f"sealing {table} with key {current}"):
                n, last = await _reseal_batch(db, ring, table, last, batch_rows)
            if n == 0:
                break
            done += n
            if progress is not None:
                progress(table, done, max(todo, done))
        moved[table] = done
    return moved


async def _reseal_batch(
    db: aiosqlite.Connection, ring: Keyring, table: str, after: int, limit: int
) -> tuple[int, int]:
    """Seal the next ``limit`` rows (rowid > ``after``) not under the current key; returns how
    many and the last rowid looked at."""
    current = ring.current_id
    where = "rowid > ? AND (key_id IS NULL OR key_id != ?) ORDER BY rowid LIMIT ?"
    updates: list[tuple[Any, ...]] = []
    if table == "records":
        sql = (
            "SELECT rowid, device_id, msg_id, credential, body, key_id, sealed FROM records"
            f" WHERE {where}"
        )
        async with db.execute(sql, (after, current, limit)) as cur:
            rows = list(await cur.fetchall())
        for rid, dev, mid, cred, body, kid, sealed in rows:
            with _row_guard(table, rid):
                cred, full = open_record(ring, dev, mid, kid, sealed, cred, body)
            clear, new_kid, new_sealed = seal_record(ring, dev, mid, cred, full)
            updates.append((clear, new_kid, new_sealed, rid))
        await db.executemany(
            "UPDATE records SET credential = NULL, body = ?, key_id = ?, sealed = ?"
            " WHERE rowid = ?",
            updates,
        )
    elif table == "frames":
        sql = f"SELECT rowid, device_id, msg_id, key_id, data FROM frames WHERE {where}"
        async with db.execute(sql, (after, current, limit)) as cur:
            rows = list(await cur.fetchall())
        for rid, dev, mid, kid, data in rows:
            with _row_guard(table, rid):
                plain = open_frame(ring, dev, mid, kid, bytes(data))
            new_kid, sealed_data = seal_frame(ring, dev, mid, plain)
            updates.append((sealed_data, new_kid, rid))
        await db.executemany("UPDATE frames SET data = ?, key_id = ? WHERE rowid = ?", updates)
    else:
        sql = (
            "SELECT rowid, person_id, source, key_id, nonce, ciphertext FROM face_templates"
            f" WHERE {where}"
        )
        async with db.execute(sql, (after, current, limit)) as cur:
            rows = list(await cur.fetchall())
        for rid, person, source, kid, nonce, ct in rows:
            aad = template_aad(str(person), str(source))
            with _row_guard(table, rid):
                plain = ring.unseal(str(kid), aad, bytes(nonce) + bytes(ct))
            new_kid, sealed = ring.seal(aad, plain)
            updates.append((new_kid, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], rid))
        await db.executemany(
            "UPDATE face_templates SET key_id = ?, nonce = ?, ciphertext = ? WHERE rowid = ?",
            updates,
        )
    return len(rows), int(rows[-1][0]) if rows else after


@contextlib.contextmanager
def _row_guard(table: str, rowid: int) -> Iterator[None]:
    try:
        yield
    except SealError as exc:
        raise RotationError(
            f"row {rowid} of {table} fails its integrity check, so it cannot be sealed again; "
            "the rotation stopped there (rows done so far are safe). Delete or restore that "
            f"row, then run `tack keys rotate` again to finish. ({exc.message})"
        ) from exc
