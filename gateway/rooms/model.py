"""The state machine of one booking, as a pure function of the booking and a clock reading.

State is *derived*, not stored: a booking's pulled times plus what happened to it at the gateway
(check-in, release, end early, extension: ``booking_local``) and the time decide it. That makes
the machine total and testable with any clock, and lets a restart pick up exactly where it
stopped. Only the events are stored; the service records a due no-show release as an event
too (at the release time, not when it noticed), so it can be written back and is visible in
the store::

               opens N min before start            checked in
    upcoming ───────────────────────────> open ─────────────────> in ──┐
        │                                  │                          │ end (or end early)
        │ cancelled / end early            │ nobody in M min after    v
        └──────────────> ended <───────────┼─── start: released    ended
                                           v
                                        released

N is ``checkin_open_min`` (default 5), M ``release_after_min`` (default 10), per room.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.store.rooms import CANCELLED

MINUTE_MS = 60_000


class BookingState(enum.StrEnum):
    UPCOMING = "upcoming"  # check-in not open yet
    OPEN = "open"  # check-in open: amber on the panel
    CHECKED_IN = "in"
    RELEASED = "released"  # a no-show: the room is free again
    ENDED = "ended"  # over, ended early or cancelled

    @property
    def holds_room(self) -> bool:
        """Whether the booking keeps the room from being booked for its time."""
        return self in (BookingState.UPCOMING, BookingState.OPEN, BookingState.CHECKED_IN)


@dataclass(frozen=True, slots=True)
class RoomRules:
    """What differs between rooms (config ``[rooms]`` and ``[[rooms.room]]``)."""

    checkin_open_min: int = 5
    release_after_min: int = 10
    private: bool = False


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking as the room service sees it: the pulled row with local events applied.

    ``end_ms`` already includes an extension or an early end made at the gateway.
    """

    booking_id: str
    room_id: str
    start_ms: int
    end_ms: int
    subject: str = ""
    organizer: str = ""
    organizer_name: str | None = None
    attendees: tuple[str, ...] = ()
    status: str = "confirmed"
    source: str = "backend"
    checked_in_ms: int | None = None
    released_ms: int | None = None
    ended_ms: int | None = None

    def opens_ms(self, rules: RoomRules) -> int:
        return self.start_ms - rules.checkin_open_min * MINUTE_MS

    def release_ms(self, rules: RoomRules) -> int:
        return self.start_ms + rules.release_after_min * MINUTE_MS


def state_at(view: BookingView, now_ms: int, rules: RoomRules) -> BookingState:
    """The booking's state at ``now_ms``; a release that is due counts even before the service
    has recorded it, so two readers never disagree about whether the room is free."""
    # Released first: the write-back of a release cancels the booking at the backend, and a
    # later pull must not turn "released at 10:10" into "cancelled".
    if view.released_ms is not None:
        return BookingState.RELEASED
    if view.status == CANCELLED or view.ended_ms is not None:
        return BookingState.ENDED
    if now_ms >= view.end_ms:
        return BookingState.ENDED
    if view.checked_in_ms is not None:
        return BookingState.CHECKED_IN
    if now_ms < view.opens_ms(rules):
        return BookingState.UPCOMING
    if now_ms < view.release_ms(rules):
        return BookingState.OPEN
    return BookingState.RELEASED


def release_due(view: BookingView, now_ms: int, rules: RoomRules) -> bool:
    """A no-show whose release has not been recorded yet."""
    return (
        view.released_ms is None
        and state_at(view, now_ms, rules) is BookingState.RELEASED
        and view.release_ms(rules) < view.end_ms
    )


def conflicts(
    views: list[BookingView],
    start_ms: int,
    end_ms: int,
    now_ms: int,
    rules: RoomRules,
    *,
    besides: str | None = None,
) -> list[BookingView]:
    """Bookings that hold the room somewhere in ``[start_ms, end_ms)``, by start."""
    return sorted(
        (
            v
            for v in views
            if v.booking_id != besides
            and v.start_ms < end_ms
            and v.end_ms > start_ms
            and state_at(v, now_ms, rules).holds_room
        ),
        key=lambda v: (v.start_ms, v.booking_id),
    )


def hhmm(ts_ms: int, zone: ZoneInfo) -> str:
    """The site's local wall-clock time, as a panel shows it (DST followed)."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=zone).strftime("%H:%M")
