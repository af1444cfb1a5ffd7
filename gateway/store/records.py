"""Attendance records: the group-commit writer and the queries the bridge and CLI run.

A device hears ``accepted`` only after its record's transaction has committed. Committing one
transaction per message would cap ingest near 4k/s on a Pi-class disk; the writer instead
takes every message that arrived while the previous commit ran and commits them together, so
the batch grows with the load and latency stays one commit long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite

from gateway.store.database import map_sqlite_error, write_transaction
from gateway.store.errors import StoreError

if TYPE_CHECKING:
    from gateway.security.keyring import Keyring

log = logging.getLogger(__name__)


class SyncState:
    PENDING = "pending"  # waiting for upload
    SYNCED = "synced"  # the backend has it
    FAILED = "failed"  # refused for good by the backend; kept with its reason
    LOCAL = "local"  # refused at the gateway; kept for the audit trail, never uploaded


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class NewRecord:
    device_id: str
    msg_id: str
    seq: int
    kind: str
    device_ts_ms: int
    received_ts_ms: int
    person_id: str | None
    credential: str | None
    body: dict[str, Any]
    status: str
    reason: str
    verdict: dict[str, Any]
    sync_state: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """``inserted`` is False for a duplicate; ``status``/``reason``/``verdict`` are then the
    first delivery's, so the device shows the same thing again."""

    inserted: bool
    record_id: int
    status: str
    reason: str
    verdict: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record as the bridge uploads it."""

    record_id: int
    device_id: str
    msg_id: str
    seq: int
    kind: str
    device_ts_ms: int
    received_ts_ms: int
    person_id: str | None
    credential: str | None
    sync_attempts: int

    @property
    def idempotency_key(self) -> str:
        """Stable for ever: the device-made id, scoped by device."""
        return f"{self.device_id}:{self.msg_id}"


_INSERT = """
INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms, person_id,
                     credential, body, status, reason, verdict, sync_state, key_id, sealed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id, msg_id) DO NOTHING
"""


class RecordWriter:
    """Group commit over one connection. Use as ``async with``; submit from any task.

    With a ``keyring`` the personal fields are sealed (gateway/security/sealed_fields.py);
    without one they are written in the clear, as before schema v10."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        max_batch: int,
        max_pending: int,
        on_commit: Callable[[int], None] | None = None,
        on_records: Callable[[list[NewRecord]], None] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self._db = db
        self._on_records = on_records  # told the new records of each commit, once committed
        self._keyring = keyring
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[NewRecord, asyncio.Future[WriteResult]]] = asyncio.Queue(
            maxsize=max_pending
        )
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.committed_rows = 0

    async def __aenter__(self) -> RecordWriter:
        self._task = asyncio.create_task(self._run(), name="tack.store.writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Anything still queued was never committed: say so rather than leave callers waiting.
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(StoreError("gateway stopping before commit"))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, record: NewRecord) -> asyncio.Future[WriteResult]:
        """Queue ``record``; the future resolves after its commit. Raises ``asyncio.QueueFull``
        when ``max_pending`` records already wait (the caller answers ``busy``)."""
        fut: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, fut))
        return fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._commit([rec for rec, _ in batch])
            except StoreError as exc:
                log.error("commit of %d records failed: %s", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _commit(self, batch: Sequence[NewRecord]) -> list[WriteResult]:
        db = self._db
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("SELECT coalesce(max(id), 0) FROM records") as cur:
                    row = await cur.fetchone()
                before = int(row[0]) if row else 0
                await db.executemany(_INSERT, [_row(r, self._keyring) for r in batch])
                async with db.execute(
                    "SELECT id, device_id, msg_id FROM records WHERE id > ?", (before,)
                ) as cur:
                    fresh = {(d, m): int(i) for i, d, m in await cur.fetchall()}
                results: list[WriteResult] = []
                claimed: set[tuple[str, str]] = set()
                for rec in batch:
                    key = (rec.device_id, rec.msg_id)
                    if key in fresh and key not in claimed:
                        claimed.add(key)
                        results.append(
                            WriteResult(True, fresh[key], rec.status, rec.reason, rec.verdict)
                        )
                    else:
                        results.append(await self._existing(key))
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, f"committing {len(batch)} records") from exc
        self.commits += 1
        self.committed_rows += sum(r.inserted for r in results)
        if self._on_records is not None:
            try:
                self._on_records(
                    [rec for rec, res in zip(batch, results, strict=True) if res.inserted]
                )
            except Exception:  # committed is committed: the acks must still go out
                log.exception("a listener of the record writer failed after a commit")
        if self._on_commit is not None:
            self._on_commit(len(batch))
        return results

    async def _existing(self, key: tuple[str, str]) -> WriteResult:
        async with self._db.execute(
            "SELECT id, status, reason, verdict FROM records WHERE device_id = ? AND msg_id = ?",
            key,
        ) as cur:
            row = await cur.fetchone()
        if row is None:  # cannot happen inside the transaction; fail loudly, not silently
            raise StoreError(f"record {key} vanished inside its transaction")
        return WriteResult(False, int(row[0]), row[1], row[2], json.loads(row[3]))


def _row(r: NewRecord, keyring: Keyring | None) -> tuple[Any, ...]:
    credential: str | None = r.credential
    kid: str | None = None
    sealed: bytes | None = None
    if keyring is None:
        body = json.dumps(r.body, separators=(",", ":"))
    else:
        from gateway.security.sealed_fields import seal_record

        body, kid, sealed = seal_record(keyring, r.device_id, r.msg_id, r.credential, r.body)
        credential = None
    return (
        r.device_id,
        r.msg_id,
        r.seq,
        r.kind,
        r.device_ts_ms,
        r.received_ts_ms,
        r.person_id,
        credential,
        body,
        r.status,
        r.reason,
        json.dumps(r.verdict, separators=(",", ":"), ensure_ascii=False),
        r.sync_state,
        kid,
        sealed,
    )


_PENDING_COLUMNS = (
    "SELECT id, device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms, person_id,"
    " credential, sync_attempts, key_id, sealed, body FROM records"
    " INDEXED BY records_pending_order WHERE sync_state = 'pending'"
)


async def catchup_batch(
    db: aiosqlite.Connection, limit: int, today_ms: int, keyring: Keyring | None = None
) -> list[OutRecord]:
    """The next records to upload after an outage: punches made since ``today_ms`` (the start
    of the site's day) first, then the backlog oldest first; within each, by device time,
    and a device's records in sequence order.

    Today's punches go first because that is what people look at (who is in now, did my
    clock-in count); the backlog only has to arrive eventually. A device's today records can
    so reach the backend before its older ones; each of the two groups keeps device order.
    """
    order = " ORDER BY device_ts_ms, device_id, seq LIMIT ?"
    async with db.execute(
        _PENDING_COLUMNS + " AND device_ts_ms >= ?" + order, (today_ms, limit)
    ) as cur:
        rows = list(await cur.fetchall())
    if len(rows) < limit:
        async with db.execute(
            _PENDING_COLUMNS + " AND device_ts_ms < ?" + order, (today_ms, limit - len(rows))
        ) as cur:
            rows.extend(await cur.fetchall())
    from gateway.security.sealed_fields import open_record

    out = []
    for row in rows:
        rid, dev, mid, seq, kind, dts, rts, person, cred, attempts, kid, sealed, body = row
        cred, _ = open_record(keyring, dev, mid, kid, sealed, cred, body)
        out.append(OutRecord(rid, dev, mid, seq, kind, dts, rts, person, cred, attempts))
    return out


async def retry_failed(db: aiosqlite.Connection, record_ids: Sequence[int] | None = None) -> int:
    """Put records the backend refused for good back in the upload queue (all of them, or
    ``record_ids``); returns how many. Their refusal reason is kept until the next attempt,
    so ``tack records`` still shows why they failed last time."""
    async with write_transaction(db, "queueing failed records again"):
        if record_ids is None:
            cur = await db.execute(
                "UPDATE records SET sync_state = 'pending' WHERE sync_state = 'failed'"
            )
        else:
            cur = await db.executemany(
                "UPDATE records SET sync_state = 'pending' WHERE sync_state = 'failed' AND id = ?",
                [(rid,) for rid in record_ids],
            )
        return cur.rowcount


async def mark_synced(db: aiosqlite.Connection, record_ids: Sequence[int]) -> None:
    stamp = now_ms()
    async with write_transaction(db, "marking records synced"):
        await db.executemany(
            "UPDATE records SET sync_state = 'synced', synced_ts_ms = ?, sync_error = NULL,"
            " sync_attempts = sync_attempts + 1 WHERE id = ?",
            [(stamp, rid) for rid in record_ids],
        )


async def mark_failed(db: aiosqlite.Connection, failures: Sequence[tuple[int, str]]) -> None:
    """Refused for good by the backend: kept with the backend's reason, not retried."""
    async with write_transaction(db, "marking records failed"):
        await db.executemany(
            "UPDATE records SET sync_state = 'failed', sync_error = ?,"
            " sync_attempts = sync_attempts + 1 WHERE id = ?",
            [(reason, rid) for rid, reason in failures],
        )


async def note_attempt(db: aiosqlite.Connection, record_ids: Sequence[int], error: str) -> None:
    """A transient failure: the records stay pending; the attempt and its error are kept."""
    async with write_transaction(db, "noting an upload attempt"):
        await db.executemany(
            "UPDATE records SET sync_attempts = sync_attempts + 1, sync_error = ? WHERE id = ?",
            [(error[:500], rid) for rid in record_ids],
        )


@dataclass(frozen=True, slots=True)
class SyncStats:
    total: int
    by_state: dict[str, int]
    oldest_pending_ms: int | None

    @property
    def pending(self) -> int:
        return self.by_state.get(SyncState.PENDING, 0)

    def lag_s(self, at_ms: int | None = None) -> float:
        """Age of the oldest record not yet at the backend: the bridge lag."""
        if self.oldest_pending_ms is None:
            return 0.0
        return max(0.0, ((at_ms or now_ms()) - self.oldest_pending_ms) / 1000)


async def sync_stats(db: aiosqlite.Connection) -> SyncStats:
    async with db.execute("SELECT sync_state, count(*) FROM records GROUP BY sync_state") as cur:
        by_state = {str(s): int(n) for s, n in await cur.fetchall()}
    async with db.execute(
        "SELECT received_ts_ms FROM records WHERE sync_state = 'pending' ORDER BY id LIMIT 1"
    ) as cur:
        row = await cur.fetchone()
    oldest = int(row[0]) if row and row[0] is not None else None
    return SyncStats(sum(by_state.values()), by_state, oldest)
