"""The people's recent punches and leave, kept in memory for the ingest path.

Classifying a punch (repeat, late, left early, on leave) reads the person's accepted punches of
two days either side and their leave around that day. From the store that is a round trip
through aiosqlite's thread for every punch, about a fifth of the gateway's time under load
(docs/benchmarks.md). This index answers from memory what it can vouch for and asks the store
for the rest, so a classification reads the same thing either way:

- **punches**: a person's are read from the store once, at their first punch since the gateway
  started (everything from ``HORIZON_MS`` before then on); after that every accepted punch the
  record writer commits is added (:meth:`RecentPunches.committed` listens to the writer, the
  only code that inserts records). A punch whose window reaches back before what was read (an
  outbox replayed days late) is classified from the store.
- **leave**: every approved leave day from a few days before today to a few days after, in one
  query, read again when the day turns or the leave version changes (the bridge bumps it with
  each pull: :data:`gateway.attendance.leave.LEAVE_VERSION_KEY`). A punch outside those days is
  classified from the store.

A punch committed while the person's punches are being read is kept: the writer's records and
the query's rows merge by (device, message id).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable

import aiosqlite

from gateway.attendance.store import PunchContext, punch_context
from gateway.store.records import NewRecord

_DAY_MS = 86_400_000
HORIZON_MS = 3 * _DAY_MS  # how far back a person's punches are read and kept
WINDOW_MS = 2 * _DAY_MS  # a classification reads this far either side of the punch
LEAVE_DAYS = 3  # leave is kept from today - 3 to today + 3


class RecentPunches:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # person -> (device_id, msg_id) -> device time; and from when each person's is complete
        self._punches: dict[str, dict[tuple[str, str], int]] = {}
        self._since: dict[str, int] = {}
        self._leave: dict[str, set[dt.date]] = {}
        self._leave_days: tuple[dt.date, dt.date] | None = None  # first, last; None: not read
        self._leave_generation = 0  # bumped by leave_changed, so a read under way is not kept
        self._leave_read: asyncio.Task[None] | None = None  # one read at a time, shared
        self.store_reads = 0  # classifications that went to the store (tests, curiosity)

    async def context(
        self, person_id: str, punch_ms: int, day: dt.date, exclude: tuple[str, str]
    ) -> PunchContext:
        """What :func:`gateway.attendance.store.punch_context` would read for this punch."""
        first, last = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
        leave = await self._leave_for(person_id, first, last)
        await self._load(person_id)
        low, high = punch_ms - WINDOW_MS, punch_ms + WINDOW_MS
        since = self._since.get(person_id)  # read after the awaits: it may have moved
        if since is None or low < since or leave is None:
            self.store_reads += 1
            return await punch_context(self._db, person_id, low, high, first, last, exclude=exclude)
        previous = [
            ts
            for key, ts in self._punches[person_id].items()
            if low <= ts < high and key != exclude
        ]
        return PunchContext(previous, leave)

    def committed(self, records: Iterable[NewRecord]) -> None:
        """The record writer committed these (new records only, not duplicates)."""
        for r in records:
            if r.kind != "punch" or r.status != "accepted" or r.person_id is None:
                continue
            punches = self._punches.get(r.person_id)
            if punches is not None:
                punches[(r.device_id, r.msg_id)] = r.device_ts_ms

    def leave_changed(self) -> None:
        """The leave table changed: read it again at the next punch."""
        self._leave_days = None
        self._leave_generation += 1

    async def _load(self, person_id: str) -> None:
        """Make the person's punches complete from ``HORIZON_MS`` ago: read them at their
        first punch, and let days older than that go on a long-running gateway."""
        now = _now_ms()
        since = self._since.get(person_id)
        if since is not None:
            if now - since > HORIZON_MS + _DAY_MS:
                since = now - HORIZON_MS
                kept = self._punches[person_id]
                for key in [k for k, ts in kept.items() if ts < since]:
                    del kept[key]
                self._since[person_id] = since
            return
        if person_id in self._punches:  # another punch of theirs is reading them now
            return
        punches: dict[tuple[str, str], int] = {}
        self._punches[person_id] = punches  # from now on the writer's commits land here too
        since = now - HORIZON_MS
        try:
            rows = await self._db.execute_fetchall(
                "SELECT device_id, msg_id, device_ts_ms FROM records WHERE kind = 'punch'"
                " AND person_id = ? AND status = 'accepted' AND device_ts_ms >= ?",
                (person_id, since),
            )
        except BaseException:
            del self._punches[person_id]
            raise
        for device_id, msg_id, ts in rows:
            punches[(device_id, msg_id)] = int(ts)
        self._since[person_id] = since

    async def _leave_for(
        self, person_id: str, first: dt.date, last: dt.date
    ) -> set[dt.date] | None:
        """The person's leave from ``first`` to ``last``; ``None`` when outside what is kept
        (or when it changed while being read)."""
        today = dt.date.fromtimestamp(_now_ms() / 1000)
        window = (today - dt.timedelta(days=LEAVE_DAYS), today + dt.timedelta(days=LEAVE_DAYS))
        if self._leave_days != window:
            if self._leave_read is None:  # punches arriving meanwhile wait for the same read
                self._leave_read = asyncio.create_task(self._read_leave(window))
            try:
                await asyncio.shield(self._leave_read)
            finally:
                if self._leave_read is not None and self._leave_read.done():
                    self._leave_read = None
            if self._leave_days != window:
                return None  # changed while it was read: this punch asks the store
        if first < window[0] or last > window[1]:
            return None
        return {d for d in self._leave.get(person_id, ()) if first <= d <= last}

    async def _read_leave(self, window: tuple[dt.date, dt.date]) -> None:
        generation = self._leave_generation
        rows = await self._db.execute_fetchall(
            "SELECT person_id, day FROM leave_days WHERE approved = 1 AND day BETWEEN ? AND ?",
            (window[0].isoformat(), window[1].isoformat()),
        )
        if generation != self._leave_generation:
            return  # changed meanwhile: left unread, the next punch reads it again
        leave: dict[str, set[dt.date]] = {}
        for person_id, day in rows:
            leave.setdefault(str(person_id), set()).add(dt.date.fromisoformat(day))
        self._leave = leave
        self._leave_days = window


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
