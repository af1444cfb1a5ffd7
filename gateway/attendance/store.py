"""The policy fed from the store: a person's recorded punches and leave, for the ingest path
and the daily report.

A punch's time is the device's (``device_ts_ms``): a punch replayed from a terminal's outbox
an hour after a network cut still happened when the person stood at the door.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import aiosqlite

from devices.protocol.reasons import ReasonCode
from gateway.attendance.policy import Classification, Policy
from gateway.attendance.shifts import effective_policy
from gateway.store.roster import Person

_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PunchRow:
    person_id: str
    ts_ms: int
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PunchContext:
    """What a punch's classification reads from the store: the person's earlier punches and
    their approved leave days."""

    previous: list[int]
    leave_days: set[dt.date]


# One statement, one round trip through aiosqlite's thread: the punches (kind 'p', the time)
# and the leave days (kind 'l', the date) of one person. Each round trip costs the event loop a
# cross-thread wake-up; two queries of three round trips each were most of a punch's cost.
_CONTEXT = (
    "SELECT 'p', device_ts_ms, device_id, msg_id FROM records WHERE kind = 'punch'"
    " AND person_id = ? AND status = 'accepted' AND device_ts_ms >= ? AND device_ts_ms < ?"
    " UNION ALL"
    " SELECT 'l', day, NULL, NULL FROM leave_days WHERE approved = 1 AND person_id = ?"
    " AND day BETWEEN ? AND ?"
)


async def punch_context(
    db: aiosqlite.Connection,
    person_id: str,
    start_ms: int,
    end_ms: int,
    first_day: dt.date,
    last_day: dt.date,
    *,
    exclude: tuple[str, str] | None = None,
) -> PunchContext:
    """The person's recorded, accepted punches in ``[start_ms, end_ms)`` and their approved
    leave from ``first_day`` to ``last_day`` (inclusive).

    ``exclude`` is the ``(device_id, msg_id)`` of the punch being classified, so a broker's
    redelivery of a stored punch is not its own repeat.
    """
    rows = await db.execute_fetchall(
        _CONTEXT,
        (person_id, start_ms, end_ms, person_id, first_day.isoformat(), last_day.isoformat()),
    )
    previous: list[int] = []
    leave: set[dt.date] = set()
    for what, value, device_id, msg_id in rows:
        if what == "l":
            leave.add(dt.date.fromisoformat(value))
        elif exclude is None or (device_id, msg_id) != exclude:
            previous.append(int(value))
    return PunchContext(previous, leave)


async def classify_punch(
    db: aiosqlite.Connection,
    policy: Policy,
    person: Person,
    punch_ms: int,
    *,
    refusal: ReasonCode | None = None,
    refusal_text: str = "",
    exclude: tuple[str, str] | None = None,
    shifts_resolved: bool = False,
) -> Classification:
    """:meth:`Policy.classify` with the person's punches (two days either side) and leave.

    The shifts are the backend's when the bridge pulled any, else ``policy``'s (the config's);
    see :mod:`gateway.attendance.shifts`. ``shifts_resolved``: ``policy`` is already that (the
    gateway keeps it between reloads instead of reading the shifts for every punch).
    """
    if not shifts_resolved:
        policy = await effective_policy(db, policy)
    day = policy.local_day(punch_ms)
    context = await punch_context(
        db,
        person.person_id,
        punch_ms - 2 * _DAY_MS,
        punch_ms + 2 * _DAY_MS,
        day - dt.timedelta(days=1),
        day + dt.timedelta(days=1),
        exclude=exclude,
    )
    return policy.classify(
        person,
        punch_ms,
        context.previous,
        refusal=refusal,
        refusal_text=refusal_text,
        leave_days=context.leave_days,
    )


async def punches_between(db: aiosqlite.Connection, start_ms: int, end_ms: int) -> list[PunchRow]:
    """Every punch with a known person in ``[start_ms, end_ms)``, accepted or refused."""
    async with db.execute(
        "SELECT person_id, device_ts_ms, status, reason FROM records WHERE kind = 'punch'"
        " AND person_id IS NOT NULL AND device_ts_ms >= ? AND device_ts_ms < ?"
        " ORDER BY device_ts_ms",
        (start_ms, end_ms),
    ) as cur:
        rows = await cur.fetchall()
    return [PunchRow(str(r[0]), int(r[1]), r[2] == "accepted", str(r[3])) for r in rows]
