"""Down-sync besides the roster pages themselves: which kind of roster pass to make, what a
finished pass means for people the backend no longer lists, and the pulls that follow each
pass (leave, leave balances, geofences, shifts, rooms and bookings).

Incremental where the backend allows (:class:`cloud_bridge.capabilities.RosterChanges`): a
pass asks only for people changed since the last one, by the backend's own modification time,
so clock skew between gateway and backend cannot lose a change. A person removed at the backend
is simply no longer listed, which only a full read can notice, so every
``bridge.roster_full_every``-th pass reads everyone, and at its end every person it did not
list becomes inactive. Whoever becomes inactive loses every face template at once: the gateway
keeps no biometric data of a person who left (:mod:`gateway.store.departed`).

A pass's plan (full or since when, when it started, the latest change seen) is kept in the kv
table beside the roster cursor, so a pass a restart interrupts resumes as the same kind of pass.
The pulls after a pass fail and are retried one by one: a backend whose room API is down still
gets its shifts pulled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import aiosqlite

from cloud_bridge.adapter import BackendAdapter, CloudError, RosterPage
from cloud_bridge.capabilities import (
    GeofenceSource,
    LeaveBalanceSource,
    RoomSource,
    RosterChanges,
    ShiftSource,
    capabilities_of,
)
from gateway.attendance.balances import replace_balances
from gateway.attendance.shifts import replace_shifts
from gateway.config import TackSettings
from gateway.store.departed import deactivate_missing, forget_biometrics, mark_listed
from gateway.store.records import now_ms
from gateway.store.rooms import replace_rooms, upsert_bookings
from gateway.store.roster import Person, get_value, load_people, set_value
from gateway.verify.geo.store import BACKEND, replace_fences

if TYPE_CHECKING:
    from cloud_bridge.runner import BridgeCounters

log = logging.getLogger(__name__)

ROSTER_PASS_KEY = "bridge.roster.pass"  # JSON plan of the pass in progress (see RosterPlan)
# The backend time the next incremental pass starts at: 1 ms after the latest change read. This
# relies on the backend never giving a later change the same or an earlier modification time
# (the simulator guarantees it; docs/adapters.md asks it of an adapter's backend).
ROSTER_SINCE_KEY = "bridge.roster.since_ms"
ROSTER_PASSES_KEY = "bridge.roster.passes_since_full"
ROSTER_PASS_ID_KEY = "bridge.roster.pass_id"  # the number of the latest full pass
BOOKINGS_SINCE_KEY = "bridge.bookings.since_ms"  # as ROSTER_SINCE_KEY, for bookings
BOOKINGS_CURSOR_KEY = "bridge.bookings.cursor"  # next page of an unfinished bookings pull
PULLED_KEY_PREFIX = "bridge.pulled."  # + step name: when that pull last finished (gateway ms)

Store = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]


@dataclass(frozen=True, slots=True)
class RosterPlan:
    """One roster pass. ``since_ms`` None: the plain full list (an adapter that cannot list
    changes); 0: everyone, in change order; above 0: only people changed since then.

    A full pass has a ``pass_id`` (0: unknown, for a pass begun by an older bridge, which
    deactivates nobody) and counts the people it ``listed``.
    """

    since_ms: int | None
    pass_id: int = 0
    modified_ms: int | None = None  # the latest backend change seen so far in this pass
    listed: int = 0

    @property
    def full(self) -> bool:
        return not self.since_ms

    def to_json(self) -> str:
        return json.dumps(
            {
                "since_ms": self.since_ms,
                "pass_id": self.pass_id,
                "modified_ms": self.modified_ms,
                "listed": self.listed,
            }
        )

    @classmethod
    def from_json(cls, raw: str | None) -> RosterPlan | None:
        try:
            data = json.loads(raw) if raw else None
            if not isinstance(data, dict):
                return None
            return cls(data["since_ms"], data["pass_id"], data["modified_ms"], data["listed"])
        except (ValueError, KeyError):
            return None


class DownSync:
    """The bridge's down-sync decisions and the pulls after each roster pass.

    ``store`` is the bridge's exclusive use of its connection; ``counters`` its
    :class:`cloud_bridge.runner.BridgeCounters`; ``leave`` its leave pull, run as the first
    step after a pass.
    """

    def __init__(
        self,
        settings: TackSettings,
        adapter: BackendAdapter,
        store: Store,
        counters: BridgeCounters,
        *,
        leave: Callable[[], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._adapter = adapter
        self._store = store
        self._counters = counters
        steps: dict[str, Callable[[], Awaitable[None]]] = {"leave": leave}
        if isinstance(adapter, LeaveBalanceSource):
            steps["leave_balances"] = partial(self._pull_balances, adapter)
        if isinstance(adapter, GeofenceSource):
            steps["geofences"] = partial(self._pull_geofences, adapter)
        if isinstance(adapter, ShiftSource):
            steps["shifts"] = partial(self._pull_shifts, adapter)
        if isinstance(adapter, RoomSource):
            steps["rooms"] = partial(self._pull_rooms, adapter)
        self._steps = steps
        self.due: set[str] = set()
        self._due_at_s = 0.0  # monotonic time of the last all_due()
        log.info(
            "backend adapter %s pulls: roster, leave%s",
            type(adapter).__name__,
            "".join(f", {c}" for c in capabilities_of(adapter)),
            extra={"site": settings.site},
        )

    # -- roster passes ------------------------------------------------------------------------

    async def plan(self, db: aiosqlite.Connection, resuming: bool) -> RosterPlan:
        """The pass to make: the interrupted one when ``resuming``, else a new one (saved)."""
        if resuming:
            saved = RosterPlan.from_json(await get_value(db, ROSTER_PASS_KEY))
            # A cursor without a plan was left by a bridge from before plans: a plain full pass.
            return saved or RosterPlan(None)
        since: int | None = None
        if isinstance(self._adapter, RosterChanges):
            since = 0
            passes = int(await get_value(db, ROSTER_PASSES_KEY) or 0)
            raw_since = await get_value(db, ROSTER_SINCE_KEY)
            if raw_since and passes + 1 < self._settings.bridge.roster_full_every:
                since = int(raw_since)
        pass_id = 0
        if not since:
            pass_id = int(await get_value(db, ROSTER_PASS_ID_KEY) or 0) + 1
            await set_value(db, ROSTER_PASS_ID_KEY, str(pass_id))
        plan = RosterPlan(since, pass_id)
        await set_value(db, ROSTER_PASS_KEY, plan.to_json())
        return plan

    async def page(self, plan: RosterPlan, cursor: str | None) -> RosterPage:
        if plan.since_ms is not None and isinstance(self._adapter, RosterChanges):
            return await self._adapter.pull_roster_changes(cursor, plan.since_ms)
        return await self._adapter.pull_roster(cursor)

    async def page_saved(
        self, db: aiosqlite.Connection, plan: RosterPlan, page: RosterPage
    ) -> RosterPlan:
        """After a page's people are saved: those who left lose their biometric data; a full
        pass notes whom it listed; the plan notes the latest change seen and how many were
        listed (saved, for a resumed pass)."""
        await self._forget([p.person_id for p in page.people if not p.active], db)
        if plan.pass_id:
            await mark_listed(db, plan.pass_id, [p.person_id for p in page.people])
        latest = plan.modified_ms
        if page.modified_ms is not None:
            latest = max(page.modified_ms, plan.modified_ms or 0)
        plan = RosterPlan(plan.since_ms, plan.pass_id, latest, plan.listed + len(page.people))
        await set_value(db, ROSTER_PASS_KEY, plan.to_json())
        return plan

    async def pass_finished(self, db: aiosqlite.Connection, plan: RosterPlan) -> None:
        """A full pass deactivates whoever it did not list (unless it listed nobody at all:
        an empty answer is far likelier a wrong tenant or URL than everyone leaving at once,
        and what it would delete cannot be had back); the next incremental pass starts at the
        latest change this one saw."""
        if plan.full and plan.pass_id and not plan.listed:
            text = (
                "the backend listed nobody in a full roster pass; nobody is made inactive. "
                "Check bridge.base_url and the app credentials"
            )
            log.error("%s", text, extra={"site": self._settings.site})
            self._counters.last_error = text
            self._counters.last_error_ts_ms = now_ms()
        elif plan.full and plan.pass_id:
            gone, removed = await deactivate_missing(db, plan.pass_id)
            if gone:
                log.info(
                    "%d people no longer listed by the backend are now inactive (%d face "
                    "templates removed): %s",
                    len(gone),
                    removed,
                    ", ".join(sorted(gone)[:20]),
                    extra={"site": self._settings.site},
                )
                self._counters.people_departed += len(gone)
                self._counters.templates_removed += removed
        if plan.modified_ms is not None:
            await set_value(db, ROSTER_SINCE_KEY, str(plan.modified_ms + 1))
        passes = 0 if plan.full else int(await get_value(db, ROSTER_PASSES_KEY) or 0) + 1
        await set_value(db, ROSTER_PASSES_KEY, str(passes))
        await set_value(db, ROSTER_PASS_KEY, "")
        if not plan.full:
            self._counters.roster_changes_pulls += 1

    async def _forget(self, person_ids: list[str], db: aiosqlite.Connection) -> None:
        removed = await forget_biometrics(db, person_ids)
        if removed:
            self._counters.templates_removed += removed
            log.info(
                "face templates of %d people who left removed (%d templates)",
                len(person_ids),
                removed,
                extra={"site": self._settings.site},
            )

    # -- the pulls after a pass ---------------------------------------------------------------

    def all_due(self) -> None:
        self.due = set(self._steps)
        self._due_at_s = time.monotonic()

    def pass_due(self) -> bool:
        """Whether the roster loop should make a pass now rather than retry failed pulls: when
        none failed, or when the next pass is due anyway (``roster_interval_s`` after the last),
        so a pull that keeps failing (an API this app may not use) never stops the roster."""
        interval_s = self._settings.bridge.roster_interval_s
        return not self.due or time.monotonic() - self._due_at_s >= interval_s

    async def run_due(self) -> None:
        """Run every due pull; each that fails stays due. Raises the first failure once all
        were tried, so the roster loop backs off and then retries only those."""
        first: CloudError | None = None
        for name, step in self._steps.items():
            if name not in self.due:
                continue
            try:
                await step()
            except CloudError as exc:
                log.warning("%s pull failed: %s", name, exc, extra={"site": self._settings.site})
                first = first or exc
                continue
            self.due.discard(name)
            async with self._store() as db:
                await set_value(db, PULLED_KEY_PREFIX + name, str(now_ms()))
        if first is not None:
            raise first

    async def _people(self) -> list[Person]:
        async with self._store() as db:
            return await load_people(db)

    async def _pull_balances(self, adapter: LeaveBalanceSource) -> None:
        everyone = await self._people()
        active = [p.person_id for p in everyone if p.active]
        balances = await adapter.leave_balances(active) if active else []
        async with self._store() as db:
            # People who left are asked nothing and keep no balance.
            await replace_balances(db, [p.person_id for p in everyone], balances)
        self._counters.leave_balances = len(balances)

    async def _pull_geofences(self, adapter: GeofenceSource) -> None:
        fences = await adapter.geofences()
        async with self._store() as db:
            saved = await replace_fences(db, self._settings.site, fences, source=BACKEND)
        if saved < len(fences):
            log.warning(
                "%d backend geofences skipped: a local fence has the same name",
                len(fences) - saved,
                extra={"site": self._settings.site},
            )
        self._counters.geofences = saved

    async def _pull_shifts(self, adapter: ShiftSource) -> None:
        shifts = await adapter.shifts()
        async with self._store() as db:
            await replace_shifts(db, shifts)
        self._counters.shifts = len(shifts)

    async def _pull_rooms(self, adapter: RoomSource) -> None:
        """Rooms whole, then bookings changed since the last pull, a page at a time; the cursor
        and the latest change are saved after each page, so a restart resumes."""
        rooms = await adapter.rooms()
        async with self._store() as db:
            await replace_rooms(db, rooms)
            since = int(await get_value(db, BOOKINGS_SINCE_KEY) or 0)
            cursor = await get_value(db, BOOKINGS_CURSOR_KEY) or None
        self._counters.rooms = len(rooms)
        while True:
            page = await adapter.bookings(cursor, since)
            cursor = page.next_cursor if page.has_more else None
            async with self._store() as db:
                await upsert_bookings(db, page.bookings)
                await set_value(db, BOOKINGS_CURSOR_KEY, cursor or "")
                if cursor is None and page.modified_ms is not None:
                    await set_value(db, BOOKINGS_SINCE_KEY, str(page.modified_ms + 1))
            self._counters.bookings_pulled += len(page.bookings)
            if cursor is None:
                return
