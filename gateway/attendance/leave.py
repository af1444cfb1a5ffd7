"""Approved leave, by person and local date, as the roster gives it.

The bridge stores what the backend approved (one row per person and day); HR tools or
``tack report leave`` may add days by hand. Only approved days are flagged: a request still
waiting for a manager is not leave yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.roster import bump_version

# Bumped in the transaction of every change to leave_days, so the gateway's in-memory copy
# (gateway/attendance/recent.py) knows to read it again.
LEAVE_VERSION_KEY = "leave.version"


@dataclass(frozen=True, slots=True)
class LeaveDay:
    person_id: str
    day: dt.date
    kind: str = ""  # as the backend names it: annual, sick, ...
    approved: bool = True


async def upsert_leave(db: aiosqlite.Connection, days: Iterable[LeaveDay]) -> int:
    rows = [(d.person_id, d.day.isoformat(), d.kind, int(d.approved), now_ms()) for d in days]
    async with write_transaction(db, "saving leave days"):
        await db.executemany(
            "INSERT INTO leave_days (person_id, day, kind, approved, updated_ts_ms)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id, day) DO UPDATE SET"
            " kind = excluded.kind, approved = excluded.approved,"
            " updated_ts_ms = excluded.updated_ts_ms",
            rows,
        )
        await bump_version(db, LEAVE_VERSION_KEY)
    return len(rows)


async def leave_between(
    db: aiosqlite.Connection, first: dt.date, last: dt.date, person_id: str | None = None
) -> dict[str, dict[dt.date, str]]:
    """Approved leave from ``first`` to ``last`` (inclusive): person -> day -> kind."""
    sql = "SELECT person_id, day, kind FROM leave_days WHERE approved = 1 AND day BETWEEN ? AND ?"
    args: tuple[str, ...] = (first.isoformat(), last.isoformat())
    if person_id is not None:
        sql += " AND person_id = ?"
        args = (*args, person_id)
    out: dict[str, dict[dt.date, str]] = {}
    async with db.execute(sql, args) as cur:
        async for pid, day, kind in cur:
            out.setdefault(str(pid), {})[dt.date.fromisoformat(day)] = str(kind)
    return out
