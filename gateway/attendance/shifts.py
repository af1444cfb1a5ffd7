"""Shift rules kept in the store, and which shifts the policy uses.

Precedence: when the store holds shifts from the backend (the bridge pulls the backend's
attendance groups), they are the site's shifts and the ``[[attendance.shifts]]`` of the config
are not used; when it holds none (no bridge, a backend without shift rules, or before the first
pull), the config's shifts apply. The config is never edited by a pull and a pull never touches
the config, so a site can always fall back to it by clearing the backend's rows
(:func:`replace_shifts` with an empty list).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import aiosqlite

from gateway.attendance.policy import Policy, Shift
from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.roster import bump_version

BACKEND = "backend"
SHIFTS_VERSION_KEY = "shifts.version"


async def replace_shifts(
    db: aiosqlite.Connection, shifts: Iterable[tuple[str, Shift]], *, source: str = BACKEND
) -> int:
    """The shifts of ``source`` become exactly ``shifts`` (``(shift_id, shift)`` pairs)."""
    rows = [
        (
            source,
            shift_id,
            s.name,
            s.team,
            s.start.strftime("%H:%M"),
            s.end.strftime("%H:%M"),
            json.dumps(sorted(s.days)),
            s.grace_in_min,
            s.grace_out_min,
            s.opens_min,
            s.closes_min,
            now_ms(),
        )
        for shift_id, s in shifts
    ]
    async with write_transaction(db, f"saving the {source} shifts"):
        await db.execute("DELETE FROM shifts WHERE source = ?", (source,))
        await db.executemany(
            "INSERT INTO shifts (source, shift_id, name, team, start_hhmm, end_hhmm, days,"
            " grace_in_min, grace_out_min, opens_min, closes_min, updated_ts_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await bump_version(db, SHIFTS_VERSION_KEY)
    return len(rows)


async def load_shifts(db: aiosqlite.Connection, source: str = BACKEND) -> list[Shift]:
    async with db.execute(
        "SELECT name, team, start_hhmm, end_hhmm, days, grace_in_min, grace_out_min, opens_min,"
        " closes_min FROM shifts WHERE source = ? ORDER BY start_hhmm, shift_id",
        (source,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        Shift(
            str(r[0]),
            dt.time.fromisoformat(r[2]),
            dt.time.fromisoformat(r[3]),
            str(r[1]),
            frozenset(int(d) for d in json.loads(r[4])),
            int(r[5]),
            int(r[6]),
            int(r[7]),
            int(r[8]),
        )
        for r in rows
    ]


async def effective_policy(db: aiosqlite.Connection, configured: Policy) -> Policy:
    """``configured`` with the backend's shifts in place of the config's, when there are any."""
    pulled = await load_shifts(db)
    if not pulled:
        return configured
    return Policy(configured.tz, pulled, repeat_window_s=configured.repeat_window_ms // 1000)
