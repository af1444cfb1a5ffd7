"""The meeting-room panel on the real MicroPython interpreter, against Mosquitto and the gateway.

What the panel shows and how its LED lights is its own reading of the last ``cmd/schedule``
and its clock (set by the gateway's ``cmd/time``): free (green), check-in open (amber),
busy (red), privacy mode, "starts in N min", and "offline since HH:MM" with presses kept in
the outbox. The schedules here are published by the test, retained, as the gateway's room
service publishes them; the panel is registered with no room, so the gateway sends none of
its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import ScheduleItem, encode_schedule, topic
from gateway.store import open_database
from gateway.store.rooms import Booking, Room, replace_rooms, upsert_bookings
from simulators.devices.firmware import FirmwareDevice
from simulators.mosquitto import Mosquitto
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
Publish = Callable[..., None]


@pytest.fixture
def schedule_for(site: str) -> Iterator[Callable[[Mosquitto, str], Publish]]:
    """``schedule_for(broker, device)(items, **rules)`` publishes the panel's retained schedule
    (and clears it at the end)."""
    clients: list[tuple[mqtt.Client, str]] = []

    def make(broker: Mosquitto, device_id: str) -> Publish:
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.connect(broker.host, broker.port)
        client.loop_start()
        where = topic(site, device_id, "cmd", "schedule")
        clients.append((client, where))

        def publish(items: list[ScheduleItem], **rules: Any) -> None:
            payload = encode_schedule("5F-A", int(time.time() * 1000), items, **rules)
            client.publish(where, payload, 1, True).wait_for_publish(5)

        return publish

    yield make
    for client, where in clients:
        client.publish(where, b"", 1, True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()


def led(dev: FirmwareDevice) -> str | None:
    lit = dev.of("led")
    return str(lit[-1]["colour"]) if lit else None


async def schedule_applied(dev: FirmwareDevice, count: int) -> None:
    await wait_until(lambda: len(dev.of("schedule")) >= count)


async def test_the_panel_shows_each_state_and_lights_its_led(
    mosquitto: Mosquitto,
    gateway_on: Any,
    firmware: Start,
    schedule_for: Callable[[Mosquitto, str], Publish],
) -> None:
    await gateway_on(mosquitto, [], panels={"room-s1": None})
    publish = schedule_for(mosquitto, "room-s1")
    now = int(time.time() * 1000)
    publish([ScheduleItem("bk-1", "Design review", now + 120 * MIN, now + 180 * MIN, "Li Wei")])
    dev = firmware("room-s1", mosquitto, app="meeting_panel")
    await wait(dev, "schedule")
    await wait(dev, "time")  # the panel's clock is the gateway's
    # Free: green, free until the next meeting, which is named.
    await wait_until(lambda: shows(dev, "Free until") and led(dev) == "green")
    assert dev.screen()[0].startswith("Room 5F-A"), dev.screen()
    assert any(line.startswith("Next ") and "Design review" in line for line in dev.screen())

    # A meeting within 15 minutes: "starts in"; its check-in (3 min before) not open yet.
    now = int(time.time() * 1000)
    publish(
        [ScheduleItem("bk-2", "Standup", now + 4 * MIN + 30_000, now + 20 * MIN)],
        checkin_open_min=3,
    )
    await schedule_applied(dev, 2)
    await wait_until(lambda: shows(dev, "Starts in 5 min: Standup"))
    assert led(dev) == "green"
    assert not shows(dev, "Check-in open")

    # Check-in open (the default window: 5 minutes before the start): amber.
    now = int(time.time() * 1000)
    publish([ScheduleItem("bk-3", "Standup", now + 2 * MIN, now + 20 * MIN)])
    await schedule_applied(dev, 3)
    await wait_until(lambda: led(dev) == "amber" and shows(dev, "Check-in open"))

    # A meeting under way that nobody has checked in to yet: amber too, with its title.
    publish([ScheduleItem("bk-4", "Budget", now - 2 * MIN, now + 50 * MIN)], release_after_min=10)
    await schedule_applied(dev, 4)
    await wait_until(lambda: shows(dev, "Budget") and shows(dev, "Busy until"))
    assert led(dev) == "amber"

    # Checked in: red.
    publish(
        [ScheduleItem("bk-4", "Budget", now - 2 * MIN, now + 50 * MIN, checked_in=True)],
        release_after_min=10,
    )
    await schedule_applied(dev, 5)
    await wait_until(lambda: led(dev) == "red" and shows(dev, "Checked in"))

    # Privacy mode: the same, with no titles.
    publish(
        [
            ScheduleItem("bk-4", "Budget", now - 2 * MIN, now + 50 * MIN, checked_in=True),
            ScheduleItem("bk-5", "Offsite planning", now + 60 * MIN, now + 90 * MIN),
        ],
        private=True,
    )
    await schedule_applied(dev, 6)
    await wait_until(lambda: shows(dev, "Booked") and not shows(dev, "Budget"))
    assert not any("Offsite" in line for line in dev.screen()), dev.screen()
    assert led(dev) == "red"

    # A no-show past its release time: the panel frees the room on its own clock.
    publish(
        [ScheduleItem("bk-6", "Forgotten", now - 12 * MIN, now + 48 * MIN)], release_after_min=10
    )
    await schedule_applied(dev, 7)
    await wait_until(lambda: led(dev) == "green" and shows(dev, "No more meetings today"))
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()


async def test_offline_the_panel_keeps_its_schedule_marked_and_queues_presses(
    mosquitto_factory: Callable[[], Mosquitto],
    gateway_on: Any,
    firmware: Start,
    schedule_for: Callable[[Mosquitto, str], Publish],
) -> None:
    broker = mosquitto_factory()
    await gateway_on(broker, [], panels={"room-s2": None})
    publish = schedule_for(broker, "room-s2")
    now = int(time.time() * 1000)
    publish([ScheduleItem("bk-1", "Weekly sync", now - 5 * MIN, now + 25 * MIN, checked_in=True)])
    dev = firmware("room-s2", broker, app="meeting_panel", heap="96K")
    await wait(dev, "schedule")
    await wait_until(lambda: shows(dev, "Weekly sync") and led(dev) == "red")

    broker.stop()
    await wait(dev, "disconnected")
    await wait_until(lambda: shows(dev, "Offline since "))
    assert shows(dev, "Weekly sync"), "the last schedule stays on screen"
    dev.send("button extend")
    queued = await wait(dev, "queued", kind="button")
    assert queued["body"] == {"button": "extend", "minutes": 15, "booking": "bk-1"}
    await wait_until(lambda: shows(dev, "Saved, 1 waiting"))

    broker.start()
    await wait(dev, "connected", 30)
    ack = await wait(dev, "ack", 30, id=queued["id"])
    assert ack["action"] == "remove", ack  # resolved by the gateway on reconnect
    await wait_until(lambda: not shows(dev, "Offline since") and not shows(dev, "waiting"))
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()


# --- with the gateway's room service (docs/meeting-rooms.md) ---------------------------------
# The panel is registered for room r-1; the room service publishes its schedule and answers
# its presses. Bookings are put in the store as the bridge's room sync puts them there.

ROOMS = {"tick_s": 0.5, "checkin_open_min": 5, "release_after_min": 10}


async def _bookings(gw: Any, *bookings: Booking) -> None:
    db = await open_database(gw.settings.db_path)
    try:
        await replace_rooms(db, [Room("r-1", "5F-A")])
        await upsert_bookings(db, bookings)
    finally:
        await db.close()


def _booking(bid: str, subject: str, start_ms: int, minutes: int) -> Booking:
    end = start_ms + minutes * MIN
    return Booking(bid, "r-1", start_ms, end, subject=subject, organizer="u001", updated_ts=1)


async def _room_panel(gw: Any, dev: FirmwareDevice, text: str) -> None:
    await wait(dev, "time")
    await wait_until(lambda: shows(dev, text), 30)


async def test_book_now_on_a_free_room_turns_it_red(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-r1": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    await _bookings(gw, _booking("bk-later", "Design review", now + 120 * MIN, 60))
    dev = firmware("room-r1", mosquitto, app="meeting_panel", verdict_show_ms=1000)
    await _room_panel(gw, dev, "Design review")
    await wait_until(lambda: led(dev) == "green" and shows(dev, "Free until"))
    seen = len(dev.of("schedule"))

    dev.send("button book")
    dev.send("button book")  # a second press: 30 minutes
    await wait_until(lambda: shows(dev, "Book 30 min"))
    queued = await wait(dev, "queued", kind="button")
    assert queued["body"] == {"button": "book", "minutes": 30}
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await wait_until(lambda: showed(dev, "Booked until "))
    await schedule_applied(dev, seen + 1)  # the room's new schedule, with the booking in it
    await wait_until(lambda: led(dev) == "red" and shows(dev, "Checked in"))


async def test_check_in_in_the_window_turns_amber_to_red(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-r2": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    await _bookings(gw, _booking("bk-soon", "Standup", now + 2 * MIN, 30))
    dev = firmware("room-r2", mosquitto, app="meeting_panel", lang="zh")
    await _room_panel(gw, dev, "Standup")
    await wait_until(lambda: led(dev) == "amber" and shows(dev, "可以签到"))

    dev.punch("C0001")  # a card at the panel
    queued = await wait(dev, "queued", kind="checkin")
    assert queued["body"] == {"booking": "bk-soon"}
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await wait_until(lambda: showed(dev, "已签到：至"))  # noqa: RUF001
    await wait_until(lambda: led(dev) == "red")


async def test_an_offline_press_is_resolved_on_reconnect_and_the_refusal_shown(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, [], panels={"room-r3": "r-1"}, rooms=ROOMS)
    now = int(time.time() * 1000)
    await _bookings(gw, _booking("bk-later", "Design review", now + 120 * MIN, 60))
    dev = firmware("room-r3", broker, app="meeting_panel", verdict_show_ms=1000)
    await _room_panel(gw, dev, "Design review")
    await wait_until(lambda: led(dev) == "green")

    broker.stop()
    await wait(dev, "disconnected")
    # While the panel is away, someone books the room from their calendar for 10 minutes on.
    await _bookings(gw, _booking("bk-new", "Interview", now + 10 * MIN, 30))
    dev.send("button book")
    dev.send("button book")  # 30 minutes: past the new booking's start
    queued = await wait(dev, "queued", kind="button")
    await wait_until(lambda: showed(dev, "Saved, 1 waiting"))

    broker.start()
    ack = await wait(dev, "ack", 30, id=queued["id"])
    assert (ack["status"], ack["reason"], ack["action"]) == ("rejected", "room_busy", "remove")
    await wait_until(lambda: showed(dev, "Room not free that long ("))
    await wait_until(lambda: shows(dev, "Interview"), 30)  # the schedule as it is now
    assert led(dev) == "green"
