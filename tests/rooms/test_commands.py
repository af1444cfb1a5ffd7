"""The room service on a real SQLite store with a clock the test moves: check-in, no-show
release, book now, extend, end early, late presses from an offline panel, and the schedules a
panel is sent after each."""

from __future__ import annotations

import json

from devices.protocol import ButtonAction, ButtonBody, ReasonCode
from gateway.rooms.store import get_view, outbox_counts
from tests.rooms.conftest import Site
from tests.rooms.support import add_bookings, booking, local


async def _ops(site: Site) -> list[tuple[str, str, str]]:
    async with site.db.execute(
        "SELECT op, booking_id, sync_state FROM room_changes WHERE op != 'remind' ORDER BY id"
    ) as cur:
        return [(str(r[0]), str(r[1]), str(r[2])) async for r in cur]


async def test_on_time_checkin_is_accepted_and_shown(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 9, 50))
    await s.service.tick()
    item = s.panel.schedule.items[0]
    assert (item.booking, item.state, item.checked_in) == ("bk-10", "upcoming", False)
    assert (s.panel.schedule.checkin_open_min, s.panel.schedule.release_after_min) == (5, 10)

    early = await s.panel.checkin("bk-10")
    assert (early.accepted, early.reason) == (False, ReasonCode.CHECKIN_NOT_OPEN)
    assert early.verdict.text == "Check-in opens at 09:55"

    s.clock.set(local(2026, 3, 10, 9, 56))
    await s.service.tick()
    assert s.panel.schedule.items[0].state == "open"  # amber on the panel

    d = await s.panel.checkin("bk-10")
    assert (d.accepted, d.reason, d.verdict.text) == (
        True,
        ReasonCode.OK,
        "Checked in: until 11:00",
    )
    item = s.panel.schedule.items[0]
    assert (item.state, item.checked_in) == ("in", True)
    assert await _ops(s) == [("checkin", "bk-10", "pending")]

    again = await s.panel.checkin("bk-10")
    assert again.accepted
    assert again.verdict.text.startswith("Already checked in")
    s.clock.set(local(2026, 3, 10, 10, 30))
    await s.service.tick()  # checked in: never released
    assert await _ops(s) == [("checkin", "bk-10", "pending")]


async def test_no_show_is_released_and_a_later_checkin_refused(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 10, 9))
    await s.service.tick()
    assert [i.booking for i in s.panel.schedule.items] == ["bk-10"]

    s.clock.set(local(2026, 3, 10, 10, 11))
    await s.service.tick()
    assert s.panel.schedule.items == ()  # free again
    view = await get_view(s.db, "bk-10")
    assert view is not None
    assert view.released_ms == local(2026, 3, 10, 10, 10)
    assert await _ops(s) == [("release", "bk-10", "pending")]

    late = await s.panel.checkin("bk-10")
    assert (late.accepted, late.reason) == (False, ReasonCode.BOOKING_RELEASED)
    assert late.verdict.text == "Released at 10:10: book again"
    assert late.verdict.at == "10:10"

    await s.service.tick()  # released once, whatever ticks follow
    assert await _ops(s) == [("release", "bk-10", "pending")]


async def test_offline_checkin_made_in_time_is_honoured_if_the_room_is_still_free(
    site_rooms: Site,
) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 10, 30))
    await s.service.tick()  # released at 10:10 while the panel was offline
    pressed = local(2026, 3, 10, 10, 8)
    d = await s.panel.checkin("bk-10", pressed_ms=pressed)
    assert (d.accepted, d.verdict.text) == (True, "Checked in: until 11:00")
    view = await get_view(s.db, "bk-10")
    assert view is not None
    assert (view.released_ms, view.checked_in_ms) == (None, pressed)
    assert s.panel.schedule.items[0].state == "in"

    # Pressed after the release time: refused, with the time it was released.
    await add_bookings(s.db, booking("bk-14", local(2026, 3, 10, 14), 60))
    s.clock.set(local(2026, 3, 10, 14, 40))
    await s.service.tick()
    d = await s.panel.checkin("bk-14", pressed_ms=local(2026, 3, 10, 14, 12))
    assert (d.accepted, d.reason) == (False, ReasonCode.BOOKING_RELEASED)
    assert d.verdict.text == "Released at 14:10: book again"


async def test_offline_checkin_in_time_is_refused_when_the_room_was_taken(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 10, 20))
    await s.service.tick()
    taken = await s.panel.press(ButtonAction.BOOK, minutes=30)
    assert taken.accepted, taken.verdict.text
    d = await s.panel.checkin("bk-10", pressed_ms=local(2026, 3, 10, 10, 5))
    assert (d.accepted, d.reason) == (False, ReasonCode.BOOKING_RELEASED)
    assert d.verdict.text == "Released at 10:10: room taken since"


async def test_book_now_only_while_the_room_is_free_that_long(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 9, 30))
    refused = await s.panel.press(ButtonAction.BOOK, minutes=45)
    assert (refused.accepted, refused.reason) == (False, ReasonCode.ROOM_BUSY)
    assert refused.verdict.text == "Free until 10:00 only"
    odd = await s.panel.press(ButtonAction.BOOK, minutes=20)
    assert (odd.reason, odd.verdict.text) == (
        ReasonCode.DURATION_NOT_OFFERED,
        "Book 15, 30, 45, 60 min",
    )
    assert await _ops(s) == []

    d = await s.panel.press(ButtonAction.BOOK, minutes=30)
    assert (d.accepted, d.verdict.text) == (True, "Booked until 10:00")
    items = s.panel.schedule.items
    assert next((i.state, i.start_ms, i.end_ms) for i in items) == (
        "in",
        local(2026, 3, 10, 9, 30),
        local(2026, 3, 10, 10),
    )
    busy = await s.panel.press(ButtonAction.BOOK, minutes=15)
    assert (busy.reason, busy.verdict.text) == (ReasonCode.ROOM_BUSY, "Room in use until 10:00")
    # The other room is not affected.
    assert (await s.other.press(ButtonAction.BOOK, minutes=60)).accepted
    assert [op for op, _, _ in await _ops(s)] == ["book", "book"]


async def test_extend_into_a_booked_slot_is_refused_and_into_a_free_one_accepted(
    site_rooms: Site,
) -> None:
    s = site_rooms
    await add_bookings(
        s.db,
        booking("bk-10", local(2026, 3, 10, 10), 60),
        booking("bk-11", local(2026, 3, 10, 11, 15), 45),
    )
    s.clock.set(local(2026, 3, 10, 10, 2))
    assert (await s.panel.checkin("bk-10")).accepted
    s.clock.set(local(2026, 3, 10, 10, 50))
    refused = await s.panel.press(ButtonAction.EXTEND, "bk-10", 30)
    assert (refused.accepted, refused.reason) == (False, ReasonCode.ROOM_BUSY)
    assert refused.verdict.text == "Next meeting at 11:15: cannot extend"

    ok = await s.panel.press(ButtonAction.EXTEND, None, 15)  # the meeting in progress
    assert (ok.accepted, ok.verdict.text) == (True, "Extended until 11:15")
    view = await get_view(s.db, "bk-10")
    assert view is not None
    assert view.end_ms == local(2026, 3, 10, 11, 15)
    assert s.panel.schedule.items[0].end_ms == local(2026, 3, 10, 11, 15)
    again = await s.panel.press(ButtonAction.EXTEND, "bk-10", 15)
    assert again.reason == ReasonCode.ROOM_BUSY  # now bk-11 follows directly


async def test_a_press_handled_twice_changes_the_booking_once(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 10, 30))
    await s.panel.checkin("bk-10", pressed_ms=local(2026, 3, 10, 10, 1))
    env = s.panel._envelope("button", ButtonBody(ButtonAction.EXTEND, "bk-10", 30), None)
    first = await s.panel.replay(env)
    second = await s.panel.replay(env)  # a broker redelivery, or a resend after a crash
    assert first.verdict == second.verdict
    assert first.verdict.text == "Extended until 11:30"
    view = await get_view(s.db, "bk-10")
    assert view is not None
    assert view.end_ms == local(2026, 3, 10, 11, 30)


async def test_end_early_frees_the_room_for_the_next_person(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    s.clock.set(local(2026, 3, 10, 10, 1))
    assert (await s.panel.checkin("bk-10")).accepted
    s.clock.set(local(2026, 3, 10, 10, 25))
    busy = await s.panel.press(ButtonAction.BOOK, minutes=15)
    assert busy.reason == ReasonCode.ROOM_BUSY
    end = await s.panel.press(ButtonAction.RELEASE, "bk-10")
    assert (end.accepted, end.verdict.text) == (True, "Meeting ended: room free")
    assert s.panel.schedule.items == ()
    assert (await s.panel.press(ButtonAction.BOOK, minutes=15)).accepted
    ended = await s.panel.checkin("bk-10")
    assert (ended.reason, ended.verdict.text) == (
        ReasonCode.BOOKING_ENDED,
        "Meeting ended at 10:25",
    )
    assert [op for op, _, _ in await _ops(s)] == ["checkin", "end", "book"]
    async with s.db.execute("SELECT body FROM room_changes WHERE op = 'end'") as cur:
        row = await cur.fetchone()
    assert row is not None
    assert json.loads(row[0])["end_ms"] == local(2026, 3, 10, 10, 25)


async def test_unknown_and_foreign_bookings_are_not_found(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-x", local(2026, 3, 10, 9), 60, room="r-102"))
    for d in (await s.panel.checkin("nope"), await s.panel.checkin("bk-x")):
        assert (d.accepted, d.reason) == (False, ReasonCode.BOOKING_NOT_FOUND)
    assert (await s.panel.press(ButtonAction.RELEASE)).reason == ReasonCode.BOOKING_NOT_FOUND


async def test_cancelled_at_the_backend_leaves_the_schedule(site_rooms: Site) -> None:
    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    await s.service.tick()
    assert len(s.panel.schedule.items) == 1
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60, status="cancelled"))
    await s.service.tick()
    assert s.panel.schedule.items == ()
    d = await s.panel.checkin("bk-10")
    assert (d.reason, d.verdict.text) == (ReasonCode.BOOKING_ENDED, "Booking was cancelled")


async def test_reminders_are_queued_once_each_across_restarts(site_rooms: Site) -> None:
    from tests.rooms.support import make_service

    s = site_rooms
    await add_bookings(
        s.db,
        booking("bk-10", local(2026, 3, 10, 10), 60),
        booking("bk-late", local(2026, 3, 10, 9, 50), 30, attendees=("u002",)),
        booking("bk-nobody", local(2026, 3, 10, 9, 50), 30, room="r-102", attendees=()),
    )
    s.clock.set(local(2026, 3, 10, 9, 44))  # 16 min before bk-10, 6 before bk-late
    await s.service.tick()
    s.clock.set(local(2026, 3, 10, 9, 46))
    await s.service.tick()
    await s.service.tick()
    s.clock.set(local(2026, 3, 10, 9, 56))
    # Booked 2 minutes before it starts: the 15-minute reminder is past, never sent late.
    await add_bookings(s.db, booking("bk-soon", local(2026, 3, 10, 9, 58), 30, room="r-102"))
    await s.service.tick()
    restarted = make_service(s.db, s.clock, {})
    await restarted.tick()
    async with s.db.execute(
        "SELECT idem_key, sync_state FROM room_changes WHERE op = 'remind'"
    ) as cur:
        rows = sorted([(str(r[0]), str(r[1])) async for r in cur])
    start, late, soon = local(2026, 3, 10, 10), local(2026, 3, 10, 9, 50), local(2026, 3, 10, 9, 58)
    assert rows == sorted(
        [
            (f"remind:bk-late:{late}:15", "pending"),
            (f"remind:bk-late:{late}:5", "pending"),
            (f"remind:bk-10:{start}:15", "pending"),
            (f"remind:bk-10:{start}:5", "pending"),
            (f"remind:bk-soon:{soon}:15", "skipped"),
            (f"remind:bk-soon:{soon}:5", "pending"),
        ]
    )
    assert (await outbox_counts(s.db))["pending"] == 5


async def test_privacy_hides_titles_and_organisers(site_rooms: Site) -> None:
    from tests.rooms.support import make_service

    s = site_rooms
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60, subject="Layoffs"))
    await s.service.tick()
    assert s.panel.schedule.items[0].title == "Layoffs"
    assert s.panel.schedule.items[0].organiser == "Li Wei"
    private = make_service(s.db, s.clock, s.sent, room=[{"id": "r-101", "private": True}])
    await private.tick()
    sched = s.panel.schedule
    assert sched.private
    assert sched.items[0].title == ""
    assert sched.items[0].organiser is None


async def test_a_schedule_is_sent_when_it_changes_and_on_every_birth(site_rooms: Site) -> None:
    from gateway.config import RoomsSettings
    from gateway.rooms import RoomService
    from tests.rooms.support import BERLIN

    s = site_rooms
    sent: list[tuple[str, bytes]] = []
    up = True

    def publish(device_id: str, payload: bytes) -> bool:
        if up:
            sent.append((device_id, payload))
        return up

    service = RoomService(s.db, RoomsSettings(), BERLIN, clock=s.clock, publish=publish)
    await add_bookings(s.db, booking("bk-10", local(2026, 3, 10, 10), 60))
    await service.tick()
    assert sorted(d for d, _ in sent) == ["panel-101", "panel-102"]
    s.clock.advance(1)
    await service.tick()  # nothing changed for a panel (only the clock): nothing sent
    assert len(sent) == 2
    await service.on_birth("panel-101")
    assert [d for d, _ in sent[2:]] == ["panel-101"]
    s.clock.set(local(2026, 3, 10, 9, 55))  # check-in opens: the state changes
    up = False  # the broker is away: not counted as sent
    await service.tick()
    up = True
    await service.tick()
    assert [d for d, _ in sent[3:]] == ["panel-101"]
