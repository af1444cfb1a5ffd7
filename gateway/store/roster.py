"""The roster pulled from the backend (people and their credentials) and the bridge's cursors.

People are replaced by what the backend says, never edited locally, so a re-pull repairs any
drift; a person who left stays as ``active = 0`` so their old records still resolve to a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms

ROSTER_VERSION_KEY = "roster.version"


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    name: str
    card: str | None = None
    employee_no: str | None = None
    department: str = ""
    active: bool = True


async def upsert_people(db: aiosqlite.Connection, people: Iterable[Person]) -> int:
    """Insert or replace people; bumps the roster version so gateways reload their cache."""
    rows = [
        (p.person_id, p.name, p.card, p.employee_no, p.department, int(p.active), now_ms())
        for p in people
    ]
    async with write_transaction(db, "saving the roster"):
        await db.executemany(
            "INSERT INTO people (person_id, name, card, employee_no, department, active,"
            " updated_ts_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (person_id) DO UPDATE SET name = excluded.name, card = excluded.card,"
            " employee_no = excluded.employee_no, department = excluded.department,"
            " active = excluded.active, updated_ts_ms = excluded.updated_ts_ms",
            rows,
        )
        await bump_version(db, ROSTER_VERSION_KEY)
    return len(rows)


async def load_people(db: aiosqlite.Connection) -> list[Person]:
    async with db.execute(
        "SELECT person_id, name, card, employee_no, department, active FROM people"
    ) as cur:
        rows = await cur.fetchall()
    return [Person(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]


async def get_value(db: aiosqlite.Connection, key: str) -> str | None:
    async with db.execute("SELECT value FROM kv WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def bump_version(db: aiosqlite.Connection, key: str) -> None:
    """Count a change in ``key`` (inside the caller's transaction): readers that keep a copy
    compare the number with the one they read and read again when it moved."""
    await db.execute(
        "INSERT INTO kv (key, value) VALUES (?, '1') ON CONFLICT (key)"
        " DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (key,),
    )


async def set_value(db: aiosqlite.Connection, key: str, value: str) -> None:
    async with write_transaction(db, f"saving {key}"):
        await db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
