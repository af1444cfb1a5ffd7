"""The spring DST change in Berlin (2026-03-29: 02:00 CET becomes 03:00 CEST): the room service
works in UTC and only shows wall-clock times, so windows keep their real length and verdicts
show the local time that really is on the wall."""

from __future__ import annotations

from devices.protocol import ButtonAction, ReasonCode
from tests.rooms.conftest import Site
from tests.rooms.support import MIN, add_bookings, booking, local


async def test_a_booking_across_the_missing_hour(site_rooms: Site) -> None:
    s = site_rooms
    start, end = local(2026, 3, 29, 1, 30), local(2026, 3, 29, 3, 30)
    assert end - start == 60 * MIN  # 01:30 CET to 03:30 CEST is one real hour
    await add_bookings(s.db, booking("bk-dst", start, 60))
    s.clock.set(local(2026, 3, 29, 1, 41))
    await s.service.tick()
    late = await s.panel.checkin("bk-dst")
    assert (late.reason, late.verdict.text) == (
        ReasonCode.BOOKING_RELEASED,
        "Released at 01:40: book again",
    )

    s.clock.set(local(2026, 3, 29, 1, 55))
    booked = await s.panel.press(ButtonAction.BOOK, minutes=15)
    assert (booked.accepted, booked.verdict.text) == (True, "Booked until 03:10")
    extended = await s.panel.press(ButtonAction.EXTEND, None, 30)
    assert (extended.accepted, extended.verdict.text) == (True, "Extended until 03:40")
    item = s.panel.schedule.items[0]
    assert item.end_ms - item.start_ms == 45 * MIN


async def test_checkin_opens_before_a_start_just_after_the_change(site_rooms: Site) -> None:
    s = site_rooms
    start = local(2026, 3, 29, 3, 2)  # 01:02 UTC; 5 min earlier the wall showed 01:57 CET
    await add_bookings(s.db, booking("bk-0302", start, 30))
    s.clock.set(local(2026, 3, 29, 1, 50))
    early = await s.panel.checkin("bk-0302")
    assert (early.reason, early.verdict.text) == (
        ReasonCode.CHECKIN_NOT_OPEN,
        "Check-in opens at 01:57",
    )
    s.clock.set(local(2026, 3, 29, 1, 58))
    ok = await s.panel.checkin("bk-0302")
    assert (ok.accepted, ok.verdict.text) == (True, "Checked in: until 03:32")
