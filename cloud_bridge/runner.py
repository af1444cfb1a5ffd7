"""The bridge's loops: upload pending records, pull the roster (with enrolment photos) and
approved leave, and keep score.

All of the bridge's state is in the store: which records are pending, which were refused and
why, and where a roster pass got to. So the bridge resumes after any stop, crash or power cut
by doing what it always does: take the oldest pending records and send them. A record the
backend stored just before a crash is sent again under the same idempotency key, and the
backend answers "duplicate" and stores nothing; the store then marks it synced.

The bridge opens its own connection to the store, so it runs the same way inside the gateway
process or beside it as a separate process; SQLite's WAL lets both write the one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import hashlib
import json
import logging
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
from prometheus_client import CollectorRegistry

from cloud_bridge.adapter import (
    BackendAdapter,
    CloudError,
    LeaveRecord,
    PhotoUnavailableError,
    RosterPage,
    UploadOutcome,
    UploadResult,
    cause_of,
)
from cloud_bridge.downsync import DownSync
from cloud_bridge.metrics import BridgeMetrics, DrainMeter
from cloud_bridge.receipts import ReceiptSync
from cloud_bridge.registry import load_adapter
from cloud_bridge.roomsync import RoomSync
from devices.protocol.errors import TackError
from gateway.attendance.leave import LeaveDay, upsert_leave
from gateway.config import TackSettings
from gateway.security.keyring import Keyring, keyring_for
from gateway.security.store_lock import SharedStoreLock
from gateway.store.database import open_database, write_transaction
from gateway.store.departed import PHOTO_KEY_PREFIX
from gateway.store.records import (
    catchup_batch,
    mark_failed,
    mark_synced,
    note_attempt,
    now_ms,
    sync_stats,
)
from gateway.store.roster import get_value, load_people, set_value, upsert_people

log = logging.getLogger(__name__)

ROSTER_CURSOR_KEY = "bridge.roster.cursor"  # next page of an unfinished pass; "" when none
ROSTER_PULLED_KEY = "bridge.roster.pulled_ts_ms"  # when the last full pass finished
STATUS_KEY = "bridge.status"  # the counters as JSON, for `tack status` in another process
LEAVE_PULLED_KEY = "bridge.leave.pulled_ts_ms"  # when leave was last pulled in full
LEAVE_PAST_DAYS = 7  # leave is pulled for site-local days today-7 .. today+30
LEAVE_AHEAD_DAYS = 30
PHOTO_SOURCE = "roster"  # face templates from the backend's photos carry this source

BACKOFF_BASE_S = 0.5  # first retry within half a second; doubles up to bridge.backoff_max_s
STATUS_WRITE_INTERVAL_S = 1.0  # the status row is for people: once a second is plenty


class BridgeState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


@dataclass
class BridgeCounters:
    """Running totals since this bridge started; the live view and ``tack status`` read them."""

    uploaded: int = 0  # stored at the backend by this bridge
    duplicates: int = 0  # the backend already had them (a replay after a crash): now synced
    refused: int = 0  # refused for good: marked failed with the backend's reason
    retries: int = 0  # record attempts that must be repeated (transient failures)
    rounds: int = 0
    store_errors: int = 0  # store operations that failed (locked, full); retried after backoff
    roster_pulls: int = 0  # complete passes over the backend's roster
    people_pulled: int = 0
    photos_fetched: int = 0  # photos downloaded (only new or changed avatar URLs)
    photos_enrolled: int = 0  # photos that became face templates
    photos_refused: int = 0  # photos refused (quality gates, gone, too large): not retried
    leave_pulls: int = 0  # complete leave pulls over the whole window
    leave_days: int = 0  # person-days of approved leave saved by the last pull
    roster_changes_pulls: int = 0  # passes that asked only for changes (of roster_pulls)
    people_departed: int = 0  # made inactive because a full pass no longer listed them
    templates_removed: int = 0  # face templates deleted because their person left
    leave_balances: int = 0  # balances (person x kind) saved by the last pull
    geofences: int = 0  # backend geofences saved by the last pull
    shifts: int = 0  # backend shifts saved by the last pull
    rooms: int = 0  # rooms saved by the last pull
    bookings_pulled: int = 0  # bookings (new, changed or cancelled) pulled
    last_error: str | None = None
    last_error_ts_ms: int | None = None
    last_upload_ts_ms: int | None = None
    retry_causes: dict[str, int] = field(default_factory=dict)  # retries by cause_of() label
    refusal_causes: dict[str, int] = field(default_factory=dict)  # refusals by cause


@dataclass(frozen=True, slots=True)
class BridgeStats:
    counters: BridgeCounters
    pending: int
    lag_s: float
    by_state: dict[str, int]
    drain_per_s: float = 0.0  # records synced per second over the last minute
    drain_eta_s: float | None = None  # time left to empty the queue at that rate; None: stuck

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.counters),
            "pending": self.pending,
            "lag_s": self.lag_s,
            "by_state": dict(self.by_state),
            "drain_per_s": self.drain_per_s,
            "drain_eta_s": self.drain_eta_s,
        }


class _Round(enum.Enum):
    AGAIN = "again"  # a full batch went through: more may be waiting
    IDLE = "idle"  # the queue is drained: wait for interval_s or a wake()
    BACKOFF = "backoff"  # something must be retried: wait the backoff delay


class Bridge:
    """Sync between the store at ``settings.db_path`` and the backend at ``settings.bridge``.

    Either ``await bridge.run(stop)`` until ``stop`` is set, or use it as
    ``async with Bridge(settings) as bridge: ...`` (stopped on exit). Single use.
    ``adapter`` replaces the one ``bridge.adapter`` names (``cloud_bridge.registry``); the
    bridge closes only an adapter it built. ``clock`` (UTC ms) decides what "today" is for the
    catch-up order and how old the oldest pending record is; tests move it by hours.
    ``metrics_registry`` is where the bridge's Prometheus metrics go (the gateway's own).
    """

    def __init__(
        self,
        settings: TackSettings,
        *,
        adapter: BackendAdapter | None = None,
        backoff_base_s: float = BACKOFF_BASE_S,
        stop_grace_s: float | None = None,
        clock: Callable[[], int] = now_ms,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._cfg = settings.bridge
        self._adapter = adapter
        self._owns_adapter = adapter is None
        self._backoff_base_s = backoff_base_s
        # A round in flight at stop may finish (and mark its records) within one call timeout;
        # after that it is cancelled, which loses nothing: its records are still pending.
        self._stop_grace_s = self._cfg.timeout_s if stop_grace_s is None else stop_grace_s
        self._name = f"tack[{settings.site}].bridge"
        self._db: aiosqlite.Connection | None = None
        # The loops share one connection; a transaction must never interleave with another
        # loop's statements (its ROLLBACK would undo them), so store work takes this lock.
        self._store_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._state = BridgeState.IDLE
        self._status_written_s = 0.0
        self._status_written: dict[str, Any] | None = None
        self._face_key: Keyring | None = None
        self._face_key_error: str | None = None
        self.counters = BridgeCounters()
        self._clock = clock
        self._tz = ZoneInfo(settings.attendance.timezone)
        self.metrics = BridgeMetrics(metrics_registry)
        self._drain = DrainMeter()
        self.rooms: RoomSync | None = None
        self.receipts: ReceiptSync | None = None  # must-read receipts: cloud_bridge/receipts.py

    @property
    def state(self) -> BridgeState:
        return self._state

    def _set_state(self, state: BridgeState) -> None:
        log.debug("bridge %s -> %s", self._state.value, state.value, extra={"site": self.site})
        self._state = state

    @property
    def site(self) -> str:
        return self._settings.site

    @property
    def adapter(self) -> BackendAdapter | None:
        """The adapter in use while the bridge runs (for its pacing and declared limits)."""
        return self._adapter

    def wake(self) -> None:
        """Start an upload round now instead of after ``interval_s`` (call on the bridge's
        event loop, e.g. from the gateway right after a commit)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask a bridge started with ``async with`` to stop; ``wait_closed()`` waits for it."""
        self._stop.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> Bridge:
        if self._state is not BridgeState.IDLE:
            raise RuntimeError(f"bridge is {self._state.value}; a Bridge is single-use")
        self._task = asyncio.create_task(self.run(self._stop), name=self._name)
        ready = asyncio.create_task(self._ready.wait(), name=f"{self._name}.ready")
        try:
            await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._task.cancel()  # do not leave the bridge running behind a cancelled start
            raise
        finally:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        if self._task.done():
            self._task.result()  # raises why it could not start
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def stats(self) -> BridgeStats:
        """Counters plus the queue depth and lag read from the store."""
        if self._db is None:
            raise RuntimeError("the bridge is not running; stats need its store connection")
        async with self._store() as db:
            s = await sync_stats(db)
        return BridgeStats(
            counters=BridgeCounters(**asdict(self.counters)),
            pending=s.pending,
            lag_s=s.lag_s(self._clock()),
            by_state=s.by_state,
            drain_per_s=self._drain.rate_per_s(),
            drain_eta_s=self._drain.eta_s(s.pending),
        )

    # -- the service --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Upload and pull until ``stop`` is set. Raises only for errors it cannot retry."""
        if self._state is not BridgeState.IDLE:
            raise RuntimeError(f"bridge is {self._state.value}; a Bridge is single-use")
        self._set_state(BridgeState.RUNNING)
        store_lock: SharedStoreLock | None = None
        try:
            # Like the gateway, hold the store so `tack backup restore` does not swap it away.
            store_lock = SharedStoreLock(self._settings.db_path)
            db = await open_database(
                self._settings.db_path,
                synchronous=self._settings.store.synchronous,
                max_size_mb=self._settings.store.max_size_mb,
            )
            try:
                if self._adapter is None:
                    self._adapter = load_adapter(self._settings, on_call=self.metrics.observe_call)
                self._db = db
                self._ready.set()
                log.info(
                    "bridge started: %s -> %s",
                    self._settings.db_path,
                    self._cfg.base_url,
                    extra={"site": self.site},
                )
                await self._supervise(stop)
            finally:
                self._set_state(BridgeState.STOPPING)
                with contextlib.suppress(TackError, sqlite3.Error):
                    await self._write_status(final=True)
                self._db = None
                try:
                    if self._owns_adapter and self._adapter is not None:
                        await self._adapter.aclose()
                finally:
                    await db.close()
        finally:
            if store_lock is not None:
                store_lock.release()
            self._set_state(BridgeState.CLOSED)
            log.info("bridge stopped", extra={"site": self.site})

    async def _supervise(self, stop: asyncio.Event) -> None:
        loops = {
            asyncio.create_task(self._upload_loop(stop), name=f"{self._name}.upload"),
            asyncio.create_task(self._roster_loop(stop), name=f"{self._name}.roster"),
        }
        rooms = RoomSync(
            self._adapter,
            clock=self._clock,
            backoff_base_s=self._backoff_base_s,
            backoff_max_s=self._cfg.backoff_max_s,
        )
        if rooms.supported:  # the room service's outbox: gateway/rooms/, cloud_bridge/roomsync.py
            self.rooms = rooms
            loops.add(
                asyncio.create_task(self._rooms_loop(stop, rooms), name=f"{self._name}.rooms")
            )
        receipts = ReceiptSync(
            self._adapter,
            store=self._store,
            backoff=self._backoff_s,
            wait=lambda stop, timeout_s: self._wait(stop, timeout_s, wakeable=False),
            interval_s=self._cfg.interval_s,
            batch_size=self._adapter.batch_size if self._adapter is not None else 1,
            site=self.site,
        )
        if receipts.supported:
            self.receipts = receipts
            loops.add(asyncio.create_task(receipts.run(stop), name=f"{self._name}.receipts"))
        stopper = asyncio.create_task(stop.wait(), name=f"{self._name}.stop")
        try:
            done, _ = await asyncio.wait({*loops, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in loops & done:
                task.result()  # a loop only ends early by raising: let it out
            if loops - done:
                await asyncio.wait(loops, timeout=self._stop_grace_s)
            for task in loops:
                if task.done():
                    task.result()
        finally:
            for pending in (*loops, stopper):
                pending.cancel()
            # Awaiting tasks we just cancelled; their CancelledError is expected, not ours.
            await asyncio.gather(*loops, stopper, return_exceptions=True)

    async def _wait(self, stop: asyncio.Event, timeout_s: float, *, wakeable: bool) -> None:
        """Sleep ``timeout_s`` or until ``stop`` (or, if ``wakeable``, a ``wake()``)."""
        if stop.is_set() or (wakeable and self._wake.is_set()):
            return
        waiters = [asyncio.create_task(stop.wait(), name=f"{self._name}.wait.stop")]
        if wakeable:
            waiters.append(asyncio.create_task(self._wake.wait(), name=f"{self._name}.wait.wake"))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _backoff_s(self, failures: int, retry_after_s: float | None, transient: bool) -> float:
        """Full jitter over a capped exponential; a permanent error waits the whole cap."""
        cap_s = self._cfg.backoff_max_s
        if not transient:
            return cap_s
        delay_s = random.uniform(0, min(cap_s, self._backoff_base_s * 2 ** min(failures, 30)))
        if retry_after_s is not None:
            delay_s = max(delay_s, min(retry_after_s, cap_s))
        return delay_s

    async def _rooms_loop(self, stop: asyncio.Event, rooms: RoomSync) -> None:
        """Drain the room outbox every ``bridge.interval_s``; the rows carry their own retry
        times, so a failure here only waits for the next round."""
        while not stop.is_set():
            try:
                settled = await rooms.round(self._store)
            except (TackError, sqlite3.Error) as exc:
                log.error("room write-back round failed: %s", exc, extra={"site": self.site})
                self._note_error(f"rooms: {exc}")
                settled = 0
            if not settled:
                await self._wait(stop, self._cfg.interval_s, wakeable=False)

    def _note_error(self, text: str) -> None:
        self.counters.last_error = text
        self.counters.last_error_ts_ms = now_ms()

    # -- upload -------------------------------------------------------------------------------

    async def _upload_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            retry_after_s: float | None = None
            transient = True
            try:
                outcome, retry_after_s, transient = await self._upload_round()
            except (TackError, sqlite3.Error) as exc:  # the store: locked, full, unreadable
                log.error("upload round failed: %s", exc, extra={"site": self.site})
                self._note_error(f"store: {exc}")
                self.counters.store_errors += 1
                outcome = _Round.BACKOFF
            with contextlib.suppress(TackError, sqlite3.Error):
                await self._write_status()
            if outcome is _Round.AGAIN:
                failures = 0
            elif outcome is _Round.IDLE:
                failures = 0
                await self._wait(stop, self._cfg.interval_s, wakeable=True)
            else:
                delay_s = self._backoff_s(failures, retry_after_s, transient)
                failures += 1
                log.info("upload backing off %.2f s", delay_s, extra={"site": self.site})
                await self._wait(stop, delay_s, wakeable=False)

    async def _upload_round(self) -> tuple[_Round, float | None, bool]:
        db, adapter = self._require_running()
        self._wake.clear()
        async with self._store():
            batch = await catchup_batch(
                db, adapter.batch_size, self._today_ms(), keyring_for(self._settings)
            )
        if not batch:
            return _Round.IDLE, None, True
        self.counters.rounds += 1
        ids = [r.record_id for r in batch]
        try:
            results = await adapter.upload(batch)
        except CloudError as exc:
            log.warning(
                "upload of %d records failed: %s", len(batch), exc, extra={"site": self.site}
            )
            self._note_error(exc.message)
            self.counters.retries += len(batch)
            cause = cause_of(exc)
            self.counters.retry_causes[cause] = self.counters.retry_causes.get(cause, 0) + len(
                batch
            )
            self.metrics.retries.labels(cause).inc(len(batch))
            async with self._store():
                await note_attempt(db, ids, exc.message)
            return _Round.BACKOFF, exc.retry_after_s, exc.transient
        if sorted(r.record_id for r in results) != sorted(ids):
            raise RuntimeError("adapter answered for other records than it was given")
        async with self._store():
            await self._apply(db, results)
        retry = [r for r in results if r.outcome is UploadOutcome.RETRY]
        if retry:
            hints = [r.retry_after_s for r in retry if r.retry_after_s is not None]
            return _Round.BACKOFF, max(hints, default=None), True
        if len(batch) < adapter.batch_size:
            return _Round.IDLE, None, True
        return _Round.AGAIN, None, True

    async def _apply(self, db: aiosqlite.Connection, results: list[UploadResult]) -> None:
        """Write a round's answers to the store: synced, failed with a reason, or retried."""
        synced = [r for r in results if r.synced]
        refused = [r for r in results if r.outcome is UploadOutcome.REFUSED]
        retry: dict[str, list[int]] = defaultdict(list)
        for r in results:
            if r.outcome is UploadOutcome.RETRY:
                retry[r.reason or "transient failure"].append(r.record_id)
        if synced:
            await mark_synced(db, [r.record_id for r in synced])
        if refused:
            await mark_failed(db, [(r.record_id, r.reason) for r in refused])
            for r in refused:
                log.warning(
                    "record %d refused by the backend: %s",
                    r.record_id,
                    r.reason,
                    extra={"site": self.site},
                )
        for reason, ids in retry.items():
            await note_attempt(db, ids, reason)
        log.debug(
            "round of %d: %d synced, %d refused, %d to retry",
            len(results),
            len(synced),
            len(refused),
            sum(len(ids) for ids in retry.values()),
            extra={"site": self.site},
        )
        c = self.counters
        c.uploaded += sum(r.outcome is UploadOutcome.ACCEPTED for r in results)
        c.duplicates += sum(r.outcome is UploadOutcome.DUPLICATE for r in results)
        c.refused += len(refused)
        c.retries += sum(len(ids) for ids in retry.values())
        m = self.metrics
        for outcome, n in Counter(r.outcome.value for r in results).items():
            m.records.labels(outcome).inc(n)
        for r in results:
            if r.outcome is UploadOutcome.RETRY:
                cause = r.cause or "other"
                c.retry_causes[cause] = c.retry_causes.get(cause, 0) + 1
                m.retries.labels(cause).inc()
            elif r.outcome is UploadOutcome.REFUSED:
                cause = r.cause or "other"
                c.refusal_causes[cause] = c.refusal_causes.get(cause, 0) + 1
                m.failures.labels(cause).inc()
        self._drain.synced(len(synced))
        if synced:
            c.last_upload_ts_ms = now_ms()
        if retry:
            self._note_error(next(iter(retry)))

    def _today_ms(self) -> int:
        """The start of the site's current day (``attendance.timezone``) in UTC ms."""
        today = dt.datetime.fromtimestamp(self._clock() / 1000, self._tz).date()
        return _local_midnight_ms(today, self._tz)

    # -- roster -------------------------------------------------------------------------------

    async def _roster_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        _, adapter = self._require_running()
        down = DownSync(self._settings, adapter, self._store, self.counters, leave=self._pull_leave)
        while not stop.is_set():
            try:
                finished = True
                if down.pass_due():  # else retry only the pulls that failed after the last pass
                    finished = await self._pull_roster(stop, down)
                    if finished:
                        down.all_due()
                await down.run_due()
            except CloudError as exc:
                log.warning("roster pull failed: %s", exc, extra={"site": self.site})
                self._note_error(exc.message)
                delay_s = self._backoff_s(failures, exc.retry_after_s, exc.transient)
                failures += 1
            except (TackError, sqlite3.Error) as exc:
                log.error("roster pull failed in the store: %s", exc, extra={"site": self.site})
                self._note_error(f"store: {exc}")
                self.counters.store_errors += 1
                delay_s = self._backoff_s(failures, None, True)
                failures += 1
            else:
                failures = 0
                delay_s = self._cfg.roster_interval_s if finished else 0.0
            await self._wait(stop, delay_s, wakeable=False)

    async def _pull_roster(self, stop: asyncio.Event, down: DownSync) -> bool:
        """Pull every page, resuming a pass a restart interrupted; True when a pass finished.

        The cursor is saved after each page, so a large roster is never pulled from the start
        again because of one failed page or a restart. ``down`` decides whether the pass reads
        everyone or only changes (:mod:`cloud_bridge.downsync`).
        """
        db, _ = self._require_running()
        async with self._store():
            cursor = await get_value(db, ROSTER_CURSOR_KEY) or None
            plan = await down.plan(db, resuming=cursor is not None)
        while True:
            page = await down.page(plan, cursor)
            cursor = page.next_cursor if page.has_more else None
            if page.people:
                async with self._store():
                    await upsert_people(db, page.people)
                    plan = await down.page_saved(db, plan, page)
            # Before the cursor moves on: a failed download repeats this page, not the pass.
            await self._sync_photos(page)
            async with self._store():
                await set_value(db, ROSTER_CURSOR_KEY, cursor or "")
            self.counters.people_pulled += len(page.people)
            if cursor is None:
                break
            if stop.is_set():
                return False
        async with self._store():
            await down.pass_finished(db, plan)
            await set_value(db, ROSTER_PULLED_KEY, str(now_ms()))
        self.counters.roster_pulls += 1
        log.info("roster pulled", extra={"site": self.site})
        return True

    # -- photos -------------------------------------------------------------------------------

    def _load_face_key(self) -> Keyring | None:
        """The keyring templates are sealed with, or None (logged) when face templates cannot
        be written here: the ``face`` extra is missing or the keyring is unusable. Roster and
        leave go on."""
        if self._face_key is not None:
            return self._face_key
        try:
            import gateway.verify.face  # noqa: F401 - needs the `face` extra
        except ImportError as exc:
            text = f"photos not enrolled: the face extra is not installed ({exc})"
        else:
            try:
                self._face_key = keyring_for(self._settings)
                return self._face_key
            except TackError as exc:
                text = f"photos not enrolled: {exc.message}"
        if text != self._face_key_error:  # once, not once per roster page
            self._face_key_error = text
            log.error("%s", text, extra={"site": self.site})
            self._note_error(text)
        return None

    async def _sync_photos(self, page: RosterPage) -> None:
        """Enrol the page's new or changed photos; drop roster templates of people who left
        or lost their photo. Does nothing while ``face.enabled`` is off."""
        if not self._settings.face.enabled or not page.people:
            return
        db, _ = self._require_running()
        for person in page.people:
            url = page.avatars.get(person.person_id, "") if person.active else ""
            async with self._store():
                raw = await get_value(db, PHOTO_KEY_PREFIX + person.person_id)
            seen = _photo_state(raw)
            if not url:
                if seen is not None:
                    await self._drop_photo(person.person_id, seen)
                continue
            if seen is not None and seen.get("url") == url:
                continue  # dealt with: enrolled, or refused until the photo changes
            await self._enrol_photo(person.person_id, url, seen)

    async def _enrol_photo(self, person_id: str, url: str, seen: dict[str, Any] | None) -> None:
        db, adapter = self._require_running()
        key = self._load_face_key()
        if key is None:
            return
        try:
            jpeg = await adapter.fetch_photo(url)
        except PhotoUnavailableError as exc:
            await self._photo_refused(person_id, url, "", exc.reason, exc.message)
            return
        self.counters.photos_fetched += 1
        digest = hashlib.sha256(jpeg).hexdigest()
        if seen is not None and seen.get("sha256") == digest:
            # Same picture at a new URL: nothing to encode again.
            await self._save_photo_state(person_id, {**seen, "url": url})
            return
        from gateway.verify.face import enroll_photos, limits_from

        async with self._store():
            result = await enroll_photos(
                db,
                key,
                person_id,
                [jpeg],
                source=PHOTO_SOURCE,
                replace=True,
                limits=limits_from(self._settings.face),
            )
        if result.enrolled:
            self.counters.photos_enrolled += 1
            log.info("photo of %s enrolled", person_id, extra={"site": self.site})
            await self._save_photo_state(
                person_id, {"url": url, "sha256": digest, "status": "enrolled", "reason": "ok"}
            )
            return
        why = result.rejected[0] if result.rejected else None
        await self._photo_refused(
            person_id,
            url,
            digest,
            why.reason.value if why else "face_not_found",
            why.detail if why else "no face encoded",
        )

    async def _photo_refused(
        self, person_id: str, url: str, digest: str, reason: str, detail: str
    ) -> None:
        self.counters.photos_refused += 1
        text = f"photo of {person_id} refused: {reason}: {detail}"
        log.warning("%s", text, extra={"site": self.site})
        self._note_error(text)
        await self._save_photo_state(
            person_id,
            {"url": url, "sha256": digest, "status": "refused", "reason": reason, "detail": detail},
        )

    async def _drop_photo(self, person_id: str, seen: dict[str, Any]) -> None:
        """The person left or has no photo any more: their roster templates go too."""
        db, _ = self._require_running()
        if seen.get("status") == "enrolled":
            key = self._load_face_key()
            if key is None:
                return
            from gateway.verify.face.templates import TemplateStore

            async with self._store():
                await TemplateStore(db, key).add(person_id, [], source=PHOTO_SOURCE, replace=True)
            log.info("roster face templates of %s removed", person_id, extra={"site": self.site})
        async with self._store(), write_transaction(db, f"forgetting the photo of {person_id}"):
            await db.execute("DELETE FROM kv WHERE key = ?", (PHOTO_KEY_PREFIX + person_id,))

    async def _save_photo_state(self, person_id: str, state: dict[str, Any]) -> None:
        db, _ = self._require_running()
        state = {**state, "ts_ms": now_ms()}
        async with self._store():
            await set_value(db, PHOTO_KEY_PREFIX + person_id, json.dumps(state, sort_keys=True))

    # -- leave --------------------------------------------------------------------------------

    async def _pull_leave(self) -> None:
        """Approved leave of the active roster for site-local days today-7 .. today+30, saved
        one row per person and day (``gateway.attendance.leave``), where the policy reads it."""
        db, adapter = self._require_running()
        tz = ZoneInfo(self._settings.attendance.timezone)
        today = dt.datetime.now(tz).date()
        first = today - dt.timedelta(days=LEAVE_PAST_DAYS)
        last = today + dt.timedelta(days=LEAVE_AHEAD_DAYS)
        start_ms = _local_midnight_ms(first, tz)
        end_ms = _local_midnight_ms(last + dt.timedelta(days=1), tz) - 1
        async with self._store():
            ids = [p.person_id for p in await load_people(db) if p.active]
        records = await adapter.leave(ids, start_ms, end_ms) if ids else []
        days = leave_days(records, tz, first, last)
        async with self._store():
            if days:
                await upsert_leave(db, days)
            await set_value(db, LEAVE_PULLED_KEY, str(now_ms()))
        self.counters.leave_pulls += 1
        self.counters.leave_days = len(days)
        log.info(
            "leave pulled: %d records, %d person-days from %s to %s",
            len(records),
            len(days),
            first,
            last,
            extra={"site": self.site},
        )

    # -- status -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the bridge's connection for one group of statements."""
        if self._db is None:
            raise RuntimeError("the bridge is not running")
        async with self._store_lock:
            if self._db.in_transaction:  # left open by an operation cancelled half-way
                await self._db.execute("ROLLBACK")
            yield self._db

    def _require_running(self) -> tuple[aiosqlite.Connection, BackendAdapter]:
        if self._db is None or self._adapter is None:
            raise RuntimeError("the bridge is not running")
        return self._db, self._adapter

    async def _write_status(self, *, final: bool = False) -> None:
        """Save the counters in the store so another process (``tack status``) can read them."""
        if self._db is None:
            return
        at_s = time.monotonic()
        counters = asdict(self.counters)
        if not final and (
            counters == self._status_written
            or at_s - self._status_written_s < STATUS_WRITE_INTERVAL_S
        ):
            return
        self._status_written_s = at_s
        self._status_written = counters
        state = BridgeState.CLOSED if final else self._state
        async with self._store() as db:
            s = await sync_stats(db)
            pending, lag_s = s.pending, s.lag_s(self._clock())
            rate, eta_s = self._drain.rate_per_s(), self._drain.eta_s(s.pending)
            upload = {
                "pending": pending,
                "lag_s": lag_s,
                "drain_per_s": rate,
                "drain_eta_s": eta_s,
                "calls_per_s": self._adapter.calls_per_s if self._adapter else None,
            }
            status = {**counters, **upload, "state": state.value, "ts_ms": now_ms()}
            await set_value(db, STATUS_KEY, json.dumps(status, separators=(",", ":")))
        m = self.metrics
        m.queue.set(pending)
        m.lag.set(lag_s)
        m.drain_rate.set(rate)
        m.drain_eta.set(-1 if eta_s is None else eta_s)


def leave_days(
    records: list[LeaveRecord], tz: ZoneInfo, first: dt.date, last: dt.date
) -> list[LeaveDay]:
    """Each site-local day from ``first`` to ``last`` that a leave touches, once per person.

    A leave is ``[start_ms, end_ms)``, so one that ends at midnight does not take the next day.
    A half day counts as a leave day: the policy flags the day, it does not split it.
    """
    out: dict[tuple[str, dt.date], LeaveDay] = {}
    for rec in records:
        day = dt.datetime.fromtimestamp(rec.start_ms / 1000, tz).date()
        end = dt.datetime.fromtimestamp((rec.end_ms - 1) / 1000, tz).date()
        day = max(day, first)
        while day <= min(end, last):
            out.setdefault((rec.person_id, day), LeaveDay(rec.person_id, day, rec.kind))
            day += dt.timedelta(days=1)
    return list(out.values())


def _local_midnight_ms(day: dt.date, tz: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tz).timestamp() * 1000)


def _photo_state(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def read_status(db: aiosqlite.Connection) -> dict[str, Any] | None:
    """The counters a bridge (in any process) last saved in the store, or None if none has."""
    raw = await get_value(db, STATUS_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
