"""Leave balances (what a person has left of each kind of leave), for the terminal to show when
the person asks.

The backend is the only source: the bridge replaces a person's balances on every roster pass, so
a balance is at most ``bridge.roster_interval_s`` old, and a kind the backend stops reporting
disappears. ``updated_ts_ms`` says when the gateway last heard, for a terminal that wants to say
"as of".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms

DAY = "day"
HOUR = "hour"
NONE_ON_FILE = "none on file"
"""The balance text when the gateway has none for the person; terminals say it in their own
language (the verdict's ``cls`` is ``balance``)."""

_UNIT_SUFFIX = {DAY: "d", HOUR: "h"}


@dataclass(frozen=True, slots=True)
class LeaveBalance:
    person_id: str
    kind: str  # as the backend names it: annual, sick, ...
    remaining: float  # may be negative where the backend lets people overdraw
    unit: str  # DAY or HOUR


async def replace_balances(
    db: aiosqlite.Connection, person_ids: Sequence[str], balances: Iterable[LeaveBalance]
) -> int:
    """The balances of ``person_ids`` become exactly ``balances`` (people asked about but not in
    ``balances`` have none left on file)."""
    rows = [(b.person_id, b.kind, b.remaining, b.unit, now_ms()) for b in balances]
    async with write_transaction(db, "saving leave balances"):
        await db.executemany(
            "DELETE FROM leave_balances WHERE person_id = ?", [(p,) for p in person_ids]
        )
        await db.executemany(
            "INSERT INTO leave_balances (person_id, kind, remaining, unit, updated_ts_ms)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id, kind) DO UPDATE SET"
            " remaining = excluded.remaining, unit = excluded.unit,"
            " updated_ts_ms = excluded.updated_ts_ms",
            rows,
        )
    return len(rows)


async def leave_balance(db: aiosqlite.Connection, person_id: str) -> list[tuple[str, float, str]]:
    """The person's balances as ``(kind, remaining, unit)``, by kind; empty when none is known."""
    async with db.execute(
        "SELECT kind, remaining, unit FROM leave_balances WHERE person_id = ? ORDER BY kind",
        (person_id,),
    ) as cur:
        return [(str(r[0]), float(r[1]), str(r[2])) async for r in cur]


def _amount(value: float) -> str:
    # Two decimals at most, no trailing zeros: 7.5, 12, 0.25 (a backend's 7.499999 is 7.5).
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def describe_balances(balances: Iterable[tuple[str, float, str]]) -> str:
    """What a terminal shows a person who asked: ``"annual 7.5 d, sick 12 h"``, kinds as the
    backend names them and in the order given, or :data:`NONE_ON_FILE`.

    Short on purpose: it goes in an ack's verdict text to a 296-pixel screen. A unit this
    gateway does not know is shown as the backend wrote it rather than dropped.
    """
    parts = [f"{kind} {_amount(n)} {_UNIT_SUFFIX.get(unit, unit)}" for kind, n, unit in balances]
    return ", ".join(parts) if parts else NONE_ON_FILE
