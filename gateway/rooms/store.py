"""The room service's tables: local events on bookings, and the outbox to the backend.

A change made at a panel is written in one transaction: the booking's local events
(``booking_local``, or a new ``bookings`` row for "book now") and its outbox row
(``room_changes``). So the next reader sees it at once, and the backend hears of it later, until
it has (the bridge drains the outbox, gateway/rooms/writeback.py). The outbox row's
``idem_key`` is the panel message's ``device:msg_id``: a press handled twice (a broker
redelivery, a resend after a crash before the ack) finds its key and changes nothing again.
Pulled rows (``bookings``) are never rewritten by the gateway, so a pull cannot undo a change the
backend has not heard of yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from gateway.rooms.model import BookingView
from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.rooms import CONFIRMED, ROOMS_VERSION_KEY

PENDING = "pending"
SYNCED = "synced"
FAILED = "failed"  # the backend refused it for good; kept for facilities
SKIPPED = "skipped"  # a reminder whose time passed while the gateway was down

_VIEW_SQL = (
    "SELECT b.booking_id, b.room_id, b.start_ms, coalesce(l.end_ms, b.end_ms), b.subject,"
    " b.organizer, p.name, b.attendees, b.status, b.source, l.checked_in_ms, l.released_ms,"
    " l.ended_ms FROM bookings b LEFT JOIN booking_local l ON l.booking_id = b.booking_id"
    " LEFT JOIN people p ON p.person_id = b.organizer"
)


def _view(r: Any) -> BookingView:
    return BookingView(
        booking_id=str(r[0]),
        room_id=str(r[1]),
        start_ms=int(r[2]),
        end_ms=int(r[3]),
        subject=str(r[4]),
        organizer=str(r[5]),
        organizer_name=None if r[6] is None else str(r[6]),
        attendees=tuple(json.loads(r[7])),
        status=str(r[8]),
        source=str(r[9]),
        checked_in_ms=r[10],
        released_ms=r[11],
        ended_ms=r[12],
    )


async def views_between(
    db: aiosqlite.Connection, room_id: str | None, start_ms: int, end_ms: int
) -> list[BookingView]:
    """Bookings (of ``room_id``, or of every room) overlapping ``[start_ms, end_ms)``."""
    sql = _VIEW_SQL + " WHERE b.start_ms < ? AND coalesce(l.end_ms, b.end_ms) > ?"
    args: list[Any] = [end_ms, start_ms]
    if room_id is not None:
        sql += " AND b.room_id = ?"
        args.append(room_id)
    sql += " ORDER BY b.start_ms, b.booking_id"
    async with db.execute(sql, args) as cur:
        return [_view(r) async for r in cur]


async def get_view(db: aiosqlite.Connection, booking_id: str) -> BookingView | None:
    async with db.execute(_VIEW_SQL + " WHERE b.booking_id = ?", (booking_id,)) as cur:
        row = await cur.fetchone()
    return _view(row) if row else None


async def room_name(db: aiosqlite.Connection, room_id: str) -> str:
    async with db.execute("SELECT name FROM rooms WHERE room_id = ?", (room_id,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row and row[0] else room_id


async def rooms_version(db: aiosqlite.Connection) -> int:
    async with db.execute("SELECT value FROM kv WHERE key = ?", (ROOMS_VERSION_KEY,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def answered(db: aiosqlite.Connection, idem_key: str) -> dict[str, Any] | None:
    """The verdict a change under ``idem_key`` was given, if it was made already."""
    async with db.execute(
        "SELECT verdict FROM room_changes WHERE idem_key = ?", (idem_key,)
    ) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    data = json.loads(row[0])
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class LocalEvents:
    """New values for a booking's ``booking_local`` row; ``None`` keeps what is there, and
    ``clear_release`` undoes a no-show release (a late offline check-in that was in time)."""

    checked_in_ms: int | None = None
    released_ms: int | None = None
    ended_ms: int | None = None
    end_ms: int | None = None
    clear_release: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One outbox row: what the backend must hear, under a key it deduplicates on."""

    idem_key: str
    op: str  # checkin, release, book, extend, end, cancel, remind
    booking_id: str
    room_id: str
    body: dict[str, Any]
    verdict: dict[str, Any] | None = None
    sync_state: str = PENDING


async def apply(
    db: aiosqlite.Connection,
    booking_id: str,
    events: LocalEvents,
    change: Change,
    *,
    new_booking: BookingView | None = None,
) -> bool:
    """Record ``events`` and queue ``change`` in one transaction; ``False`` (nothing done) when
    a change under the same key exists already."""
    ts = now_ms()
    async with write_transaction(db, f"changing booking {booking_id}"):
        cur = await db.execute(
            "INSERT OR IGNORE INTO room_changes (idem_key, op, booking_id, room_id, body, verdict,"
            " created_ts_ms, sync_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.idem_key,
                change.op,
                change.booking_id,
                change.room_id,
                json.dumps(change.body, ensure_ascii=False, sort_keys=True),
                None if change.verdict is None else json.dumps(change.verdict, ensure_ascii=False),
                ts,
                change.sync_state,
            ),
        )
        if cur.rowcount == 0:
            return False
        if new_booking is not None:
            b = new_booking
            await db.execute(
                "INSERT OR IGNORE INTO bookings (booking_id, room_id, start_ms, end_ms, subject,"
                " organizer, attendees, status, updated_ts, pulled_ts_ms, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    b.booking_id,
                    b.room_id,
                    b.start_ms,
                    b.end_ms,
                    b.subject,
                    b.organizer,
                    json.dumps(list(b.attendees)),
                    CONFIRMED,
                    ts,
                    b.source,
                ),
            )
        await db.execute(
            "INSERT INTO booking_local (booking_id, checked_in_ms, released_ms, ended_ms, end_ms,"
            " changed_ts_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (booking_id) DO UPDATE SET"
            " checked_in_ms = coalesce(excluded.checked_in_ms, booking_local.checked_in_ms),"
            " released_ms = CASE WHEN ? THEN NULL"
            "   ELSE coalesce(excluded.released_ms, booking_local.released_ms) END,"
            " ended_ms = coalesce(excluded.ended_ms, booking_local.ended_ms),"
            " end_ms = coalesce(excluded.end_ms, booking_local.end_ms),"
            " changed_ts_ms = excluded.changed_ts_ms",
            (
                booking_id,
                events.checked_in_ms,
                events.released_ms,
                events.ended_ms,
                events.end_ms,
                ts,
                int(events.clear_release),
            ),
        )
    return True


async def queue_once(db: aiosqlite.Connection, changes: Iterable[Change]) -> int:
    """Queue changes that touch no booking (reminders); a key already there is left alone, so
    each is sent once whatever restarts. Returns how many were new."""
    rows = [
        (
            c.idem_key,
            c.op,
            c.booking_id,
            c.room_id,
            json.dumps(c.body, ensure_ascii=False, sort_keys=True),
            now_ms(),
            c.sync_state,
        )
        for c in changes
    ]
    if not rows:
        return 0
    async with write_transaction(db, "queueing room reminders"):
        before = db.total_changes
        await db.executemany(
            "INSERT OR IGNORE INTO room_changes (idem_key, op, booking_id, room_id, body,"
            " created_ts_ms, sync_state) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return db.total_changes - before


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    idem_key: str
    op: str
    booking_id: str
    room_id: str
    body: dict[str, Any]
    attempts: int


async def due_changes(db: aiosqlite.Connection, now: int, limit: int) -> list[OutboxRow]:
    """Pending outbox rows whose retry time has come, oldest first (order matters: a booking's
    check-in must reach the backend before its extension)."""
    async with db.execute(
        "SELECT id, idem_key, op, booking_id, room_id, body, sync_attempts FROM room_changes"
        " WHERE sync_state = ? AND next_try_ms <= ? ORDER BY id LIMIT ?",
        (PENDING, now, limit),
    ) as cur:
        return [
            OutboxRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), json.loads(r[5]), r[6])
            async for r in cur
        ]


async def mark_synced(db: aiosqlite.Connection, row_id: int) -> None:
    async with write_transaction(db, "marking a room change sent"):
        await db.execute(
            "UPDATE room_changes SET sync_state = ?, synced_ts_ms = ?, sync_error = NULL,"
            " sync_attempts = sync_attempts + 1 WHERE id = ?",
            (SYNCED, now_ms(), row_id),
        )


async def mark_retry(
    db: aiosqlite.Connection, row_id: int, error: str, next_try_ms: int, *, permanent: bool
) -> None:
    async with write_transaction(db, "marking a room change for retry"):
        await db.execute(
            "UPDATE room_changes SET sync_state = ?, sync_error = ?, next_try_ms = ?,"
            " sync_attempts = sync_attempts + 1 WHERE id = ?",
            (FAILED if permanent else PENDING, error[:500], next_try_ms, row_id),
        )


async def outbox_counts(db: aiosqlite.Connection) -> dict[str, int]:
    async with db.execute(
        "SELECT sync_state, count(*) FROM room_changes GROUP BY sync_state"
    ) as cur:
        return {str(r[0]): int(r[1]) async for r in cur}
