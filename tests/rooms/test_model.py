"""The booking state machine as a pure function of the booking, its local events and the time."""

from __future__ import annotations

import pytest

from gateway.rooms.model import (
    BookingState,
    BookingView,
    RoomRules,
    conflicts,
    release_due,
    state_at,
)

MIN = 60_000
RULES = RoomRules(checkin_open_min=5, release_after_min=10)
B = BookingView("b", "r", start_ms=60 * MIN, end_ms=120 * MIN)


@pytest.mark.parametrize(
    ("minute", "state"),
    [
        (0, BookingState.UPCOMING),
        (54, BookingState.UPCOMING),
        (55, BookingState.OPEN),
        (60, BookingState.OPEN),
        (69, BookingState.OPEN),
        (70, BookingState.RELEASED),  # due even before the service records it
        (120, BookingState.ENDED),  # over, its release never recorded
    ],
)
def test_a_booking_nobody_checks_in_to(minute: int, state: BookingState) -> None:
    assert state_at(B, minute * MIN, RULES) is state


def test_checked_in_holds_the_room_until_the_end() -> None:
    b = BookingView("b", "r", 60 * MIN, 120 * MIN, checked_in_ms=58 * MIN)
    assert state_at(b, 100 * MIN, RULES) is BookingState.CHECKED_IN
    assert state_at(b, 120 * MIN, RULES) is BookingState.ENDED


def test_a_release_stays_a_release_when_the_backend_then_cancels() -> None:
    b = BookingView("b", "r", 60 * MIN, 120 * MIN, status="cancelled", released_ms=70 * MIN)
    assert state_at(b, 80 * MIN, RULES) is BookingState.RELEASED
    cancelled = BookingView("c", "r", 60 * MIN, 120 * MIN, status="cancelled")
    assert state_at(cancelled, 0, RULES) is BookingState.ENDED


def test_a_booking_shorter_than_the_release_delay_just_ends() -> None:
    short = BookingView("s", "r", 60 * MIN, 65 * MIN)
    assert state_at(short, 66 * MIN, RULES) is BookingState.ENDED
    assert not release_due(short, 66 * MIN, RULES)
    assert release_due(B, 71 * MIN, RULES)


def test_conflicts_are_the_bookings_that_hold_the_room() -> None:
    released = BookingView("x", "r", 0, 60 * MIN, released_ms=10 * MIN)
    later = BookingView("y", "r", 130 * MIN, 150 * MIN)
    views = [released, B, later]
    assert conflicts(views, 0, 60 * MIN, 30 * MIN, RULES) == []
    assert [v.booking_id for v in conflicts(views, 110 * MIN, 140 * MIN, 30 * MIN, RULES)] == [
        "b",
        "y",
    ]
    assert conflicts(views, 110 * MIN, 140 * MIN, 30 * MIN, RULES, besides="b")[0].booking_id == "y"
