"""Meeting rooms and their bookings as the backend has them, for the room panels.

The bridge pulls rooms whole (a site has tens of them) and bookings incrementally, by the
backend's modification time; a cancelled booking stays as a row with ``status = 'cancelled'``,
which is how an incremental pull learns that a slot came free. Times are UTC milliseconds,
``[start_ms, end_ms)``. ``updated_ts`` is the backend's modification time (its clock), and
``pulled_ts_ms`` the gateway's when the row was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.roster import bump_version

ROOMS_VERSION_KEY = "rooms.version"  # bumped on every change, so a room service reloads
CONFIRMED = "confirmed"
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    name: str
    capacity: int = 0
    location: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class Booking:
    booking_id: str
    room_id: str
    start_ms: int
    end_ms: int
    subject: str = ""
    organizer: str = ""  # a person_id of the roster
    attendees: tuple[str, ...] = ()  # person_ids
    status: str = CONFIRMED  # or CANCELLED
    updated_ts: int = 0  # the backend's modification time, UTC ms


async def replace_rooms(db: aiosqlite.Connection, rooms: Iterable[Room]) -> int:
    """The rooms become exactly ``rooms``; bookings of a room that went away stay until the
    backend cancels them (they are history, and the panel of that room is gone anyway)."""
    rows = [(r.room_id, r.name, r.capacity, r.location, int(r.active), now_ms()) for r in rooms]
    async with write_transaction(db, "saving the rooms"):
        await db.execute("DELETE FROM rooms")
        await db.executemany(
            "INSERT INTO rooms (room_id, name, capacity, location, active, updated_ts_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        await _bump(db)
    return len(rows)


async def upsert_bookings(db: aiosqlite.Connection, bookings: Iterable[Booking]) -> int:
    rows = [
        (
            b.booking_id,
            b.room_id,
            b.start_ms,
            b.end_ms,
            b.subject,
            b.organizer,
            json.dumps(list(b.attendees)),
            b.status,
            b.updated_ts,
            now_ms(),
        )
        for b in bookings
    ]
    if not rows:
        return 0
    async with write_transaction(db, "saving bookings"):
        await db.executemany(
            "INSERT INTO bookings (booking_id, room_id, start_ms, end_ms, subject, organizer,"
            " attendees, status, updated_ts, pulled_ts_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (booking_id) DO UPDATE SET room_id = excluded.room_id,"
            " start_ms = excluded.start_ms, end_ms = excluded.end_ms,"
            " subject = excluded.subject, organizer = excluded.organizer,"
            " attendees = excluded.attendees, status = excluded.status,"
            " updated_ts = excluded.updated_ts, pulled_ts_ms = excluded.pulled_ts_ms",
            rows,
        )
        await _bump(db)
    return len(rows)


async def load_rooms(db: aiosqlite.Connection) -> list[Room]:
    async with db.execute(
        "SELECT room_id, name, capacity, location, active FROM rooms ORDER BY room_id"
    ) as cur:
        return [Room(str(r[0]), str(r[1]), int(r[2]), str(r[3]), bool(r[4])) async for r in cur]


async def bookings_between(
    db: aiosqlite.Connection,
    room_id: str,
    start_ms: int,
    end_ms: int,
    *,
    include_cancelled: bool = False,
) -> list[Booking]:
    """The room's bookings overlapping ``[start_ms, end_ms)``, by start time."""
    sql = (
        "SELECT booking_id, room_id, start_ms, end_ms, subject, organizer, attendees, status,"
        " updated_ts FROM bookings WHERE room_id = ? AND start_ms < ? AND end_ms > ?"
    )
    if not include_cancelled:
        sql += f" AND status = '{CONFIRMED}'"
    sql += " ORDER BY start_ms, booking_id"
    async with db.execute(sql, (room_id, end_ms, start_ms)) as cur:
        return [
            Booking(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]),
                str(r[4]),
                str(r[5]),
                tuple(json.loads(r[6])),
                str(r[7]),
                int(r[8]),
            )
            async for r in cur
        ]


async def _bump(db: aiosqlite.Connection) -> None:
    await bump_version(db, ROOMS_VERSION_KEY)
