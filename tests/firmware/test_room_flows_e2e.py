"""Whole meeting-room flows on real MicroPython panels, Mosquitto and the gateway's room service.

Each panel is registered for room r-1; the gateway's room service publishes its schedule and
answers its presses (docs/meeting-rooms.md). Bookings are put in the store as the bridge's room
sync puts them there (``upsert_bookings``); the service reads the store on every tick. Every
test checks what a person at the panel would notice: the screen and the LED. The panel's clock
is the gateway's (``cmd/time``) and its time zone the site's (UTC+8, Asia/Shanghai), so the
times the panel shows are the ones computed here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.rooms import store as room_store
from gateway.rooms.model import BookingView, hhmm
from gateway.store import open_database
from gateway.store.rooms import Booking, Room, replace_rooms, upsert_bookings
from simulators.devices.firmware import FirmwareDevice
from simulators.mosquitto import Mosquitto
from tests.fixtures.radicale import radicale_fixture  # noqa: F401 (the fixture `radicale`)
from tests.firmware.rigs import (
    Start,
    firmware_fixture,  # noqa: F401 (the fixture `firmware`)
    gateway_on_fixture,  # noqa: F401 (the fixture `gateway_on`)
    showed,
    shows,
    wait,
    wait_until,
)

pytestmark = pytest.mark.slow

MIN = 60_000
ROOMS = {"tick_s": 0.5, "checkin_open_min": 5, "release_after_min": 10}
PANEL = {"app": "meeting_panel", "verdict_show_ms": 1500, "tz_offset_min": 480}


def led(dev: FirmwareDevice) -> str | None:
    lit = dev.of("led")
    return str(lit[-1]["colour"]) if lit else None


def at(gw: Any, ts_ms: int) -> str:
    """``ts_ms`` as HH:MM in the site's time zone, as the panel and the gateway show it."""
    return hhmm(ts_ms, ZoneInfo(gw.settings.attendance.timezone))


async def put(gw: Any, *bookings: Booking) -> None:
    """Bookings into the store, as the bridge's room sync writes them."""
    db = await open_database(gw.settings.db_path)
    try:
        await replace_rooms(db, [Room("r-1", "5F-A")])
        await upsert_bookings(db, bookings)
    finally:
        await db.close()


async def view(gw: Any, booking_id: str) -> BookingView | None:
    db = await open_database(gw.settings.db_path)
    try:
        return await room_store.get_view(db, booking_id)
    finally:
        await db.close()


def booking(bid: str, subject: str, start_ms: int, minutes: int, updated: int = 1) -> Booking:
    end = start_ms + minutes * MIN
    return Booking(bid, "r-1", start_ms, end, subject=subject, organizer="u001", updated_ts=updated)


async def see(dev: FirmwareDevice, pred: Callable[[], bool], timeout_s: float = 20.0) -> None:
    try:
        await wait_until(pred, timeout_s)
    except AssertionError:
        raise AssertionError(f"not as expected; screen {dev.screen()}\n{dev.tail(20)}") from None


async def panel(gw: Any, firmware: Start, broker: Mosquitto, device_id: str, text: str) -> Any:
    dev = firmware(device_id, broker, **PANEL)
    await wait(dev, "time")
    await see(dev, lambda: shows(dev, text), 30)
    return dev


async def checked_in(dev: FirmwareDevice) -> None:
    """A card at the panel checks in to the meeting under way: red."""
    dev.punch("C0001")
    queued = await wait(dev, "queued", kind="checkin")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await see(dev, lambda: led(dev) == "red" and shows(dev, "Checked in"))


async def test_extend_into_a_booked_slot_is_refused_and_the_refusal_shown(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-f1": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    end = now + 10 * MIN
    await put(
        gw,
        booking("bk-now", "Budget", now - 2 * MIN, 12),
        booking("bk-next", "Interview", end, 30),  # right after: extending would run into it
    )
    dev = await panel(gw, firmware, mosquitto, "room-f1", "Budget")
    await checked_in(dev)
    assert shows(dev, f"Busy until {at(gw, end)}"), dev.screen()

    dev.send("button extend")
    queued = await wait(dev, "queued", kind="button")
    assert queued["body"] == {"button": "extend", "minutes": 15, "booking": "bk-now"}
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("rejected", "room_busy")
    await see(dev, lambda: showed(dev, f"Room not free that long ({at(gw, end)})"))
    # Nothing changed: the meeting still ends when it did, the next one still follows.
    assert shows(dev, f"Busy until {at(gw, end)}"), dev.screen()
    assert shows(dev, "Interview"), dev.screen()
    assert led(dev) == "red"
    kept = await view(gw, "bk-now")
    assert kept is not None
    assert kept.end_ms == end


async def test_end_early_frees_the_room(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-f2": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    later = now + 120 * MIN
    await put(
        gw,
        booking("bk-now", "Budget", now - 2 * MIN, 50),
        booking("bk-later", "Design review", later, 60),
    )
    dev = await panel(gw, firmware, mosquitto, "room-f2", "Budget")
    await checked_in(dev)
    seen = len(dev.of("schedule"))

    dev.send("button release")
    queued = await wait(dev, "queued", kind="button")
    assert queued["body"] == {"button": "release", "booking": "bk-now"}
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await see(dev, lambda: showed(dev, "Meeting ended: room free"))
    await see(dev, lambda: len(dev.of("schedule")) > seen)  # the room's new schedule
    await see(dev, lambda: led(dev) == "green" and shows(dev, f"Free until {at(gw, later)}"))
    assert not shows(dev, "Budget"), dev.screen()
    assert shows(dev, "Design review"), dev.screen()


async def test_book_now_over_a_conflict_is_refused_and_the_refusal_shown(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-f3": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    soon = now + 20 * MIN
    await put(gw, booking("bk-soon", "Interview", soon, 30))
    dev = await panel(gw, firmware, mosquitto, "room-f3", "Interview")
    await see(dev, lambda: led(dev) == "green" and shows(dev, f"Free until {at(gw, soon)}"))

    dev.send("button book")
    dev.send("button book")  # 30 minutes: past the interview's start
    await see(dev, lambda: shows(dev, "Book 30 min"))
    queued = await wait(dev, "queued", kind="button")
    assert queued["body"] == {"button": "book", "minutes": 30}
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("rejected", "room_busy")
    await see(dev, lambda: showed(dev, f"Room not free that long ({at(gw, soon)})"))
    # Still free, still the same next meeting.
    assert led(dev) == "green"
    assert shows(dev, f"Free until {at(gw, soon)}"), dev.screen()
    assert not showed(dev, "Booked until"), "nothing was booked"


async def test_a_no_show_is_released_by_the_gateway_and_the_panel_shows_free(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-f4": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    await put(gw, booking("bk-later", "Design review", now + 120 * MIN, 60))
    dev = await panel(gw, firmware, mosquitto, "room-f4", "Design review")
    # A meeting nobody checks in to, whose release time (10 min after its start) is 10 s away.
    now = int(time.time() * 1000)
    release = now + 10_000
    await put(gw, booking("bk-noshow", "Forgotten", release - 10 * MIN, 40))
    await see(dev, lambda: shows(dev, "Forgotten") and led(dev) == "amber")
    assert shows(dev, "Check-in open"), dev.screen()
    seen = len(dev.of("schedule"))

    await see(dev, lambda: len(dev.of("schedule")) > seen, 20)  # the gateway's new schedule
    released = await view(gw, "bk-noshow")
    assert released is not None
    assert released.released_ms == release
    await see(dev, lambda: led(dev) == "green" and shows(dev, "Free until"))
    assert not shows(dev, "Forgotten"), dev.screen()
    assert shows(dev, "Design review"), dev.screen()

    # Whoever turns up now finds no meeting to check in to; the room can be booked at once.
    dev.send("button book")
    queued = await wait(dev, "queued", kind="button")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await see(dev, lambda: led(dev) == "red" and shows(dev, "Checked in"))


async def test_a_booking_changed_at_the_backend_while_offline_shows_on_reconnect(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, [], panels={"room-f5": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    first = now + 120 * MIN
    await put(gw, booking("bk-1", "Design review", first, 60))
    dev = await panel(gw, firmware, broker, "room-f5", "Design review")
    await see(dev, lambda: led(dev) == "green" and shows(dev, f"Free until {at(gw, first)}"))

    broker.stop()
    await wait(dev, "disconnected")
    await see(dev, lambda: shows(dev, "Offline since "))
    # At the backend the review moves to 3 minutes from now and is renamed; the bridge's
    # next pull writes it (a newer version of the same booking).
    moved = int(time.time() * 1000) + 3 * MIN
    await put(gw, booking("bk-1", "Design review v2", moved, 30, updated=2))
    assert shows(dev, f"Free until {at(gw, first)}"), "offline: the last schedule stays"
    assert not shows(dev, "v2"), dev.screen()

    broker.start()
    await wait(dev, "connected", 30)
    await see(dev, lambda: shows(dev, "Design review v2"), 30)
    await see(dev, lambda: not shows(dev, "Offline since"))
    # Now within its check-in window: amber, "starts in", the new start time.
    await see(dev, lambda: led(dev) == "amber" and shows(dev, "Check-in open"))
    assert shows(dev, f"Free until {at(gw, moved)}"), dev.screen()
    assert shows(dev, "Starts in 3 min: Design review v2"), dev.screen()


# --- a booking from a CalDAV calendar (a real Radicale server) --------------------------------

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Tack tests//EN
BEGIN:VEVENT
UID:caldav-retro
DTSTAMP:20260301T000000Z
DTSTART;TZID=Europe/Berlin:{start}
DTEND;TZID=Europe/Berlin:{end}
SUMMARY:Sprint retro
END:VEVENT
END:VCALENDAR
"""


def _calendar_with_event(base: str, start_ms: int, end_ms: int) -> None:
    """Room r-1's calendar at Radicale, with one event written in Berlin time (not the site's)."""
    from caldav.davclient import DAVClient

    berlin = ZoneInfo("Europe/Berlin")

    def local(ts_ms: int) -> str:
        return datetime.fromtimestamp(ts_ms / 1000, berlin).strftime("%Y%m%dT%H%M%S")

    client = DAVClient(url=base)
    client.mkcol(base + "tack/", "")
    client.mkcalendar(base + "tack/r-1/", "")
    calendar = client.calendar(url=base + "tack/r-1/")  # type: ignore[no-untyped-call]
    calendar.save_event(EVENT.format(start=local(start_ms), end=local(end_ms)))


async def test_a_booking_from_a_caldav_calendar_shows_on_the_panel(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start, radicale: str
) -> None:
    now = int(time.time() * 1000)
    start = (now // MIN + 40) * MIN  # whole minutes: the calendar has no seconds
    end = start + 30 * MIN
    await asyncio.to_thread(_calendar_with_event, radicale, start, end)
    rooms = {**ROOMS, "caldav_url": radicale, "room": [{"id": "r-1", "calendar": "tack/r-1/"}]}
    gw = await gateway_on(mosquitto, [], panels={"room-f6": "r-1"}, rooms=rooms)
    await put(gw)  # the room's name, as the bridge's room sync writes it
    dev = await panel(gw, firmware, mosquitto, "room-f6", "Sprint retro")
    # In the site's time (UTC+8), whatever zone the calendar wrote it in.
    await see(dev, lambda: led(dev) == "green" and shows(dev, f"Free until {at(gw, start)}"))
    assert shows(dev, f"Next {at(gw, start)}: Sprint retro"), dev.screen()
    assert dev.screen()[0].startswith("Room 5F-A"), dev.screen()


# --- a daylight-saving change day --------------------------------------------------------------

BERLIN_SPRING = int(datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)


async def test_the_panel_turns_0159_into_0300_on_the_spring_change_and_checks_in_after_it(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    """Berlin, 29 March 2026: at 02:00 CET the clocks go to 03:00 CEST. The gateway runs on a
    clock 45 s before the change; the panel is configured for UTC+8 (wrong on purpose) and takes
    the site's offset and its change from ``cmd/time``. It shows 01:59, then 03:00 without being
    told again, never the hour that does not exist, and the stand-up booked 03:00-03:30 CEST
    (01:00-01:30 UTC) is open for check-in before the change and checked in after it."""
    t0 = int(time.time() * 1000)
    start = BERLIN_SPRING - 45_000

    def clock() -> int:
        return start + int(time.time() * 1000) - t0

    gw = await gateway_on(
        mosquitto,
        [],
        panels={"room-dst": "r-1"},
        clock=clock,
        rooms=ROOMS,
        attendance={"timezone": "Europe/Berlin"},
    )
    await put(gw, booking("bk-dst", "Stand-up", BERLIN_SPRING, 30))
    dev = await panel(gw, firmware, mosquitto, "room-dst", "Stand-up")
    synced = dev.of("time")
    assert synced, dev.tail()
    # Before the change: the winter hour, the meeting's time in summer time, check-in open.
    await see(dev, lambda: led(dev) == "amber" and shows(dev, "Check-in open"))
    assert shows(dev, "Free until 03:00"), dev.screen()
    assert dev.screen()[0].endswith(" 01:59"), dev.screen()

    await see(dev, lambda: dev.screen()[0].endswith(" 03:00"), 60)  # the clock, after the change
    assert not any(" 02:" in e["lines"][0] for e in dev.of("screen")), (
        "the panel showed an hour that does not exist that night"
    )
    assert len(dev.of("time")) == len(synced), "the change came from tz_next, not a new cmd/time"

    await checked_in(dev)
    await see(dev, lambda: shows(dev, "Busy until 03:30"))
