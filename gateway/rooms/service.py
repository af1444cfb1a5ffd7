"""The room service: answers panel presses, releases no-shows, queues reminders, and keeps
every panel's retained ``cmd/schedule`` current.

Everything time-dependent reads the injected clock (UTC ms), so tests drive a whole day,
DST change included, without sleeping. Commands run one at a time (one lock): two panels of one
room pressing "book now" together must not both win.

A panel press is answered from the local state and written to the store before the answer;
the backend hears of it later through the outbox (gateway/rooms/writeback.py). A press handled
twice (redelivered, or resent after a crash before its ack) finds its outbox key and is answered
as before without changing anything again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import aiosqlite

from devices.protocol import (
    ButtonAction,
    ButtonBody,
    CheckinBody,
    Envelope,
    ReasonCode,
    ScheduleItem,
    Verdict,
    encode_schedule,
)
from devices.protocol.limits import MAX_ORGANISER_CHARS, MAX_ROOM_CHARS, MAX_TITLE_CHARS
from gateway.config import RoomsSettings
from gateway.rooms import store
from gateway.rooms.model import (
    MINUTE_MS,
    BookingState,
    BookingView,
    RoomRules,
    conflicts,
    hhmm,
    release_due,
    state_at,
)
from gateway.store.devices import Device, list_devices
from gateway.verify import Decision

log = logging.getLogger(__name__)

Clock = Callable[[], int]  # UTC milliseconds
# (device_id, cmd/schedule payload) -> sent; published retained, QoS 1
Publish = Callable[[str, bytes], bool]

# How far back the service looks for bookings that may still matter (one running over midnight,
# a long workshop): the longest booking it handles whole.
LOOKBACK_MS = 24 * 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's answer: accepted (reason ``ok``) or refused with a room reason code."""

    ok: bool
    reason: ReasonCode
    text: str
    at: str | None = None

    def decision(self) -> Decision:
        return Decision(self.ok, self.reason, Verdict(ok=self.ok, text=self.text, at=self.at))


class RoomService:
    def __init__(
        self,
        db: aiosqlite.Connection,
        settings: RoomsSettings,
        zone: ZoneInfo,
        *,
        clock: Clock,
        publish: Publish | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._zone = zone
        self._clock = clock
        self._publish = publish
        self._lock = asyncio.Lock()
        self._sent: dict[str, bytes] = {}  # device -> last schedule sent, without its ts
        self._version = -1

    # -- rules ---------------------------------------------------------------------------

    def rules(self, room_id: str) -> RoomRules:
        s = self._settings
        o = s.override(room_id)
        if o is None:
            return RoomRules(s.checkin_open_min, s.release_after_min, s.private)
        return RoomRules(
            s.checkin_open_min if o.checkin_open_min is None else o.checkin_open_min,
            s.release_after_min if o.release_after_min is None else o.release_after_min,
            s.private if o.private is None else o.private,
        )

    def _at(self, ts_ms: int) -> str:
        return hhmm(ts_ms, self._zone)

    # -- panel events ----------------------------------------------------------------------

    async def decide(self, envelope: Envelope, device: Device) -> Decision:
        """Answer a panel's ``checkin`` or ``button`` event (the ingest path stores it)."""
        if device.room_id is None:
            return Outcome(
                False, ReasonCode.BOOKING_NOT_FOUND, "Panel has no room: see facilities"
            ).decision()
        key = f"{envelope.device_id}:{envelope.msg_id}"
        async with self._lock:
            earlier = await store.answered(self._db, key)
            if earlier is not None:  # made before: answer the same, change nothing again
                return Decision(True, ReasonCode.OK, Verdict.from_wire(earlier))
            await self._settle(device.room_id)
            outcome = await self._command(envelope, device.room_id, key)
        log.info(
            "room %s: %s -> %s (%s)",
            device.room_id,
            envelope.kind,
            outcome.reason,
            outcome.text,
            extra={"device_id": envelope.device_id, "msg_id": envelope.msg_id},
        )
        await self.publish_room(device.room_id)
        return outcome.decision()

    async def _command(self, envelope: Envelope, room_id: str, key: str) -> Outcome:
        body = envelope.body
        now = self._clock()
        if isinstance(body, CheckinBody):
            return await self._checkin(room_id, body.booking, envelope.device_ts_ms, now, key)
        if not isinstance(body, ButtonBody):
            return Outcome(False, ReasonCode.UNKNOWN_KIND, "Not a room command")
        match body.button:
            case ButtonAction.CHECKIN:
                return await self._checkin(room_id, body.booking, envelope.device_ts_ms, now, key)
            case ButtonAction.BOOK:
                return await self._book_now(room_id, body.minutes, now, key)
            case ButtonAction.EXTEND:
                return await self._extend(room_id, body.booking, body.minutes, now, key)
            case ButtonAction.RELEASE | ButtonAction.CANCEL:
                return await self._end(room_id, body.booking, now, key)
        return Outcome(False, ReasonCode.INVALID_VALUE, "Unknown button")  # pragma: no cover

    async def _views(self, room_id: str, now: int, until: int) -> list[BookingView]:
        return await store.views_between(self._db, room_id, now - LOOKBACK_MS, until)

    async def _target(
        self, room_id: str, booking_id: str | None, now: int
    ) -> BookingView | Outcome:
        """The booking a press names, or the room's current one when it names none."""
        rules = self.rules(room_id)
        if booking_id is None:
            soon = now + rules.checkin_open_min * MINUTE_MS + 1
            for v in await self._views(room_id, now, soon):
                if state_at(v, now, rules) in (BookingState.OPEN, BookingState.CHECKED_IN):
                    return v
            return Outcome(False, ReasonCode.BOOKING_NOT_FOUND, "No meeting now")
        view = await store.get_view(self._db, booking_id)
        if view is None or view.room_id != room_id:
            return Outcome(False, ReasonCode.BOOKING_NOT_FOUND, "No such booking in this room")
        return view

    def _gone(self, view: BookingView, now: int) -> Outcome | None:
        """The refusal for a booking that no longer holds the room, if it does not."""
        rules = self.rules(view.room_id)
        state = state_at(view, now, rules)
        if state is BookingState.RELEASED:
            at = self._at(view.released_ms or view.release_ms(rules))
            return Outcome(False, ReasonCode.BOOKING_RELEASED, f"Released at {at}: book again", at)
        if state is BookingState.ENDED:
            return self._ended(view)
        return None

    def _ended(self, view: BookingView) -> Outcome:
        if view.status != "confirmed":
            return Outcome(False, ReasonCode.BOOKING_ENDED, "Booking was cancelled")
        at = self._at(min(view.ended_ms or view.end_ms, view.end_ms))
        return Outcome(False, ReasonCode.BOOKING_ENDED, f"Meeting ended at {at}", at)

    async def _checkin(
        self, room_id: str, booking_id: str | None, device_ts: int, now: int, key: str
    ) -> Outcome:
        target = await self._target(room_id, booking_id, now)
        if isinstance(target, Outcome):
            return target
        view, rules = target, self.rules(room_id)
        if view.checked_in_ms is not None and state_at(view, now, rules) is BookingState.CHECKED_IN:
            until = self._at(view.end_ms)
            return Outcome(True, ReasonCode.OK, f"Already checked in: until {until}", until)
        if state_at(view, now, rules) is BookingState.ENDED:
            return self._ended(view)
        # A press queued by an offline panel counts at the time it was made (never later than
        # now: a panel clock ahead of the gateway's gains nothing).
        pressed = min(device_ts, now)
        if pressed < view.opens_ms(rules):
            at = self._at(view.opens_ms(rules))
            return Outcome(False, ReasonCode.CHECKIN_NOT_OPEN, f"Check-in opens at {at}", at)
        release_at = view.released_ms or view.release_ms(rules)
        if pressed >= release_at:
            at = self._at(release_at)
            return Outcome(False, ReasonCode.BOOKING_RELEASED, f"Released at {at}: book again", at)
        reinstated = state_at(view, now, rules) is BookingState.RELEASED
        if reinstated:
            # In time, but released while the press waited offline: honoured only if nobody
            # has taken the room since.
            taken = conflicts(
                await self._views(room_id, now, view.end_ms), now, view.end_ms, now, rules
            )
            if taken:
                at = self._at(release_at)
                return Outcome(
                    False,
                    ReasonCode.BOOKING_RELEASED,
                    f"Released at {at}: room taken since",
                    at,
                )
        until = self._at(view.end_ms)
        outcome = Outcome(True, ReasonCode.OK, f"Checked in: until {until}", until)
        await store.apply(
            self._db,
            view.booking_id,
            store.LocalEvents(checked_in_ms=pressed, clear_release=reinstated),
            store.Change(
                key,
                "checkin",
                view.booking_id,
                room_id,
                {"booking_id": view.booking_id, "at_ms": pressed},
                _wire(outcome),
            ),
        )
        return outcome

    async def _book_now(self, room_id: str, minutes: int | None, now: int, key: str) -> Outcome:
        offered = self._settings.book_now_min
        if minutes is None or minutes not in offered:
            choices = ", ".join(str(m) for m in offered)
            return Outcome(False, ReasonCode.DURATION_NOT_OFFERED, f"Book {choices} min")
        rules = self.rules(room_id)
        end = now + minutes * MINUTE_MS
        views = await self._views(room_id, now, end)
        taken = conflicts(views, now, end, now, rules)
        if taken:
            first = taken[0]
            if first.start_ms <= now or first.checked_in_ms is not None:  # in use already
                at = self._at(first.end_ms)
                return Outcome(False, ReasonCode.ROOM_BUSY, f"Room in use until {at}", at)
            at = self._at(first.start_ms)
            return Outcome(False, ReasonCode.ROOM_BUSY, f"Free until {at} only", at)
        booking_id = "tk-" + hashlib.sha256(key.encode()).hexdigest()[:20]
        until = self._at(end)
        outcome = Outcome(True, ReasonCode.OK, f"Booked until {until}", until)
        new = BookingView(booking_id, room_id, now, end, source="panel")
        await store.apply(
            self._db,
            booking_id,
            store.LocalEvents(checked_in_ms=now),
            store.Change(
                key,
                "book",
                booking_id,
                room_id,
                {"booking_id": booking_id, "start_ms": now, "end_ms": end},
                _wire(outcome),
            ),
            new_booking=new,
        )
        return outcome

    async def _extend(
        self, room_id: str, booking_id: str | None, minutes: int | None, now: int, key: str
    ) -> Outcome:
        offered = self._settings.extend_min
        if minutes is None or minutes not in offered:
            choices = ", ".join(str(m) for m in offered)
            return Outcome(False, ReasonCode.DURATION_NOT_OFFERED, f"Extend by {choices} min")
        target = await self._target(room_id, booking_id, now)
        if isinstance(target, Outcome):
            return target
        view, rules = target, self.rules(room_id)
        gone = self._gone(view, now)
        if gone is not None:
            return gone
        end = view.end_ms + minutes * MINUTE_MS
        taken = conflicts(
            await self._views(room_id, now, end),
            view.end_ms,
            end,
            now,
            rules,
            besides=view.booking_id,
        )
        if taken:
            at = self._at(taken[0].start_ms)
            return Outcome(False, ReasonCode.ROOM_BUSY, f"Next meeting at {at}: cannot extend", at)
        until = self._at(end)
        outcome = Outcome(True, ReasonCode.OK, f"Extended until {until}", until)
        await store.apply(
            self._db,
            view.booking_id,
            store.LocalEvents(end_ms=end),
            store.Change(
                key,
                "extend",
                view.booking_id,
                room_id,
                {"booking_id": view.booking_id, "end_ms": end},
                _wire(outcome),
            ),
        )
        return outcome

    async def _end(self, room_id: str, booking_id: str | None, now: int, key: str) -> Outcome:
        target = await self._target(room_id, booking_id, now)
        if isinstance(target, Outcome):
            return target
        view = target
        gone = self._gone(view, now)
        if gone is not None:
            return gone
        cancel = now < view.start_ms
        op = "cancel" if cancel else "end"
        text = "Booking cancelled: room free" if cancel else "Meeting ended: room free"
        at = self._at(now)
        outcome = Outcome(True, ReasonCode.OK, text, at)
        await store.apply(
            self._db,
            view.booking_id,
            store.LocalEvents(ended_ms=now, end_ms=None if cancel else max(now, view.start_ms + 1)),
            store.Change(
                key,
                op,
                view.booking_id,
                room_id,
                {"booking_id": view.booking_id, "end_ms": now},
                _wire(outcome),
            ),
        )
        return outcome

    # -- time passing ----------------------------------------------------------------------

    async def _settle(self, room_id: str | None) -> int:
        """Record the no-show releases that are due (at their release time); how many."""
        now = self._clock()
        released = 0
        for v in await store.views_between(self._db, room_id, now - LOOKBACK_MS, now + 1):
            rules = self.rules(v.room_id)
            if not release_due(v, now, rules):
                continue
            at = v.release_ms(rules)
            done = await store.apply(
                self._db,
                v.booking_id,
                store.LocalEvents(released_ms=at),
                store.Change(
                    f"release:{v.booking_id}",
                    "release",
                    v.booking_id,
                    v.room_id,
                    {"booking_id": v.booking_id, "at_ms": at},
                ),
            )
            if done:
                released += 1
                log.info("room %s: booking %s released as a no-show", v.room_id, v.booking_id)
        return released

    async def _remind(self) -> int:
        """Queue the reminders that are due, once each: the latest threshold passed; earlier
        ones missed while the gateway was down are recorded as skipped, never sent late."""
        now = self._clock()
        thresholds = self._settings.remind_min
        if not thresholds:
            return 0
        horizon = now + max(thresholds) * MINUTE_MS + 1
        changes: list[store.Change] = []
        for v in await store.views_between(self._db, None, now, horizon):
            if not v.attendees or v.start_ms <= now:
                continue
            if not state_at(v, now, self.rules(v.room_id)).holds_room:
                continue
            passed = [m for m in thresholds if v.start_ms - m * MINUTE_MS <= now]
            if not passed:
                continue
            latest = min(passed)
            for m in passed:
                changes.append(
                    store.Change(
                        f"remind:{v.booking_id}:{v.start_ms}:{m}",
                        "remind",
                        v.booking_id,
                        v.room_id,
                        {
                            "booking_id": v.booking_id,
                            "minutes": m,
                            "start_ms": v.start_ms,
                            "subject": v.subject,
                            "room": v.room_id,
                            "attendees": list(v.attendees),
                            "text": f"{v.subject or 'Meeting'} starts at {self._at(v.start_ms)}"
                            f" in {v.room_id}",
                        },
                        sync_state=store.PENDING if m == latest else store.SKIPPED,
                    )
                )
        return await store.queue_once(self._db, changes)

    async def tick(self) -> None:
        """Releases, reminders and schedules, as of now: run every ``rooms.tick_s``."""
        async with self._lock:
            await self._settle(None)
            await self._remind()
        await self.publish_all()

    # -- schedules ---------------------------------------------------------------------------

    async def schedule_payload(self, room_id: str) -> bytes:
        """The room's ``cmd/schedule`` now: bookings holding the room within the horizon."""
        now = self._clock()
        rules = self.rules(room_id)
        until = now + self._settings.horizon_h * 60 * MINUTE_MS
        items = []
        for v in await self._views(room_id, now, until):
            state = state_at(v, now, rules)
            if not state.holds_room or v.end_ms <= now:
                continue
            items.append(
                ScheduleItem(
                    booking=v.booking_id,
                    title="" if rules.private else v.subject[:MAX_TITLE_CHARS],
                    start_ms=v.start_ms,
                    end_ms=v.end_ms,
                    organiser=None
                    if rules.private or not v.organizer_name
                    else v.organizer_name[:MAX_ORGANISER_CHARS],
                    checked_in=state is BookingState.CHECKED_IN,
                    state=str(state),
                )
            )
        name = (await store.room_name(self._db, room_id))[:MAX_ROOM_CHARS]
        items = items[:24]
        while True:
            try:
                return encode_schedule(
                    name,
                    now,
                    items,
                    checkin_open_min=rules.checkin_open_min,
                    release_after_min=rules.release_after_min,
                    private=rules.private,
                )
            except ValueError:
                if not items:
                    raise
                items = items[:-1]  # too many bytes: the latest bookings wait for a later one

    async def _panels(self) -> dict[str, str]:
        """Device id -> room id of every panel that shows a room."""
        return {
            d.device_id: d.room_id
            for d in await list_devices(self._db)
            if d.room_id is not None and not d.revoked
        }

    async def publish_room(self, room_id: str, *, force_device: str | None = None) -> None:
        if self._publish is None:
            return
        panels = [d for d, r in (await self._panels()).items() if r == room_id]
        if not panels:
            return
        payload = await self.schedule_payload(room_id)
        shape = _without_ts(payload)
        for device_id in panels:
            if device_id != force_device and self._sent.get(device_id) == shape:
                continue
            if self._publish(device_id, payload):
                self._sent[device_id] = shape
            else:
                self._sent.pop(device_id, None)

    async def publish_all(self) -> None:
        """Publish every panel's schedule that changed (states move with the clock, bookings
        with pulls, panels with ``tack devices room``)."""
        for room_id in sorted(set((await self._panels()).values())):
            await self.publish_room(room_id)

    async def on_birth(self, device_id: str) -> None:
        """A panel came online: send it the schedule now, whatever it had."""
        room_id = (await self._panels()).get(device_id)
        if room_id is not None:
            await self.publish_room(room_id, force_device=device_id)


def _wire(outcome: Outcome) -> dict[str, object]:
    return Verdict(ok=outcome.ok, text=outcome.text, at=outcome.at).to_wire()


def _without_ts(payload: bytes) -> bytes:
    """A schedule minus its ``ts``: what decides whether a panel needs a new one."""
    head, _, rest = payload.partition(b'"ts":')
    _, _, tail = rest.partition(b",")
    return head + tail
