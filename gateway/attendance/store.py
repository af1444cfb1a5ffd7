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
from gateway.attendance.leave import leave_between
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


async def punch_times(
    db: aiosqlite.Connection,
    person_id: str,
    start_ms: int,
    end_ms: int,
    *,
    exclude: tuple[str, str] | None = None,
) -> list[int]:
    """When the person's recorded, accepted punches happened in ``[start_ms, end_ms)``.

    ``exclude`` is the ``(device_id, msg_id)`` of the punch being classified, so a broker's
    redelivery of a stored punch is not its own repeat.
    """
    async with db.execute(
        "SELECT device_ts_ms, device_id, msg_id FROM records WHERE kind = 'punch'"
        " AND person_id = ? AND status = 'accepted' AND device_ts_ms >= ? AND device_ts_ms < ?",
        (person_id, start_ms, end_ms),
    ) as cur:
        rows = await cur.fetchall()
    return [int(r[0]) for r in rows if exclude is None or (r[1], r[2]) != exclude]


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
    previous = await punch_times(
        db, person.person_id, punch_ms - 2 * _DAY_MS, punch_ms + 2 * _DAY_MS, exclude=exclude
    )
    day = policy.local_day(punch_ms)
    leave = await leave_between(
        db, day - dt.timedelta(days=1), day + dt.timedelta(days=1), person.person_id
    )
    return policy.classify(
        person,
        punch_ms,
        previous,
        refusal=refusal,
        refusal_text=refusal_text,
        leave_days=set(leave.get(person.person_id, {})),
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
