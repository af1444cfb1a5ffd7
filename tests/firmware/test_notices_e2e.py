"""Must-read notices on the real devices: a notice sent at the gateway shows full screen on a
MicroPython terminal and panel until a person acknowledges it; the receipt goes through the
outbox, the gateway records it, and the device's screen goes back to normal.

Real ``micropython`` processes, Mosquitto and the gateway; the notice is stored as ``tack
notices send`` stores it (gateway.notices.service.send_notice).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import ScheduleItem, encode_schedule, topic
from simulators.mosquitto import Mosquitto
from tests.firmware.rigs import (
    DRILL,
    Start,
    firmware_fixture,  # noqa: F401 (the fixture `firmware`)
    gateway_on_fixture,  # noqa: F401 (the fixture `gateway_on`)
    see,
    send,
    shows,
    unread,
    until_all_read,
    wait,
    wait_until,
)

pytestmark = pytest.mark.slow


async def test_a_notice_shows_on_a_terminal_until_ok_and_the_receipt_clears_it(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, ["term-n1"])
    # In a small board's heap (80 KiB: at 64 KiB a terminal has room for punches only, see
    # the test below): the notice code is loaded beside everything else, then let go.
    dev = firmware("term-n1", mosquitto, heap="80K")
    await wait(dev, "connected")
    await see(dev, "Tap card or enter ID")
    nid = await send(gw, ["term-n1"], DRILL, "Fire drill")

    await wait(dev, "notice", ids=[nid])
    await see(dev, "Fire drill")
    screen = dev.screen()
    assert screen[0] == "Fire drill", screen
    assert any(line.startswith("Fire drill at 15:00") for line in screen[1:]), screen
    assert "Facilities" in screen[-1], screen

    # A card still punches while the notice is up; the verdict shows, then the notice again.
    dev.punch("C0001")
    punched = await wait(dev, "queued")
    await wait(dev, "ack", id=punched["id"])
    await see(dev, "Li Wei")
    await see(dev, "Press OK when read")
    assert [(n, d) for n, d in await unread(gw)] == [(nid, "term-n1")]

    dev.send("button ok")
    queued = await wait(dev, "queued", kind="receipt")
    assert queued["notice"] == nid
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"], ack["action"]) == ("accepted", "ok", "remove")
    await see(dev, "Tap card or enter ID")
    assert not shows(dev, "Fire drill")

    await until_all_read(gw)
    await wait(dev, "notice", ids=[])  # the gateway's list without it

    # And the terminal punches on, with the notice code gone from its heap.
    dev.punch("C0002")
    again = await wait(dev, "queued", seq=queued["seq"] + 1)
    await wait(dev, "ack", id=again["id"])
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()


async def test_a_terminal_offline_when_the_notice_was_sent_shows_it_and_acks_offline(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-n2"])
    nid = await send(gw, ["term-n2"], "Badge renewal at reception this week", "Badges")
    await wait_until(lambda: gw.notices.published >= 1)  # published while the device was off

    dev = firmware("term-n2", broker, lang="zh")
    await wait(dev, "connected")
    await see(dev, "阅读后请按确认键")
    assert dev.screen()[0] == "Badges"

    broker.stop()  # acknowledged with no network: the receipt waits in the outbox
    await wait(dev, "disconnected")
    dev.send("button ok")
    queued = await wait(dev, "queued", kind="receipt")
    await see(dev, "请刷卡或输入工号")
    assert await unread(gw) == [(nid, "term-n2")]

    broker.start()
    ack = await wait(dev, "ack", 30, id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await until_all_read(gw)
    assert not shows(dev, "Badges"), "the retained list from before the receipt stays hidden"


async def test_a_notice_on_a_panel_is_acknowledged_with_any_button(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start, site: str
) -> None:
    gw = await gateway_on(mosquitto, [], panels={"room-n1": None})
    now = int(time.time() * 1000)
    publish = mqtt.Client(CallbackAPIVersion.VERSION2)
    publish.connect(mosquitto.host, mosquitto.port)
    publish.loop_start()
    schedule_topic = topic(site, "room-n1", "cmd", "schedule")
    items = [ScheduleItem("bk-1", "Weekly sync", now + 3_600_000, now + 5_400_000, "Li Wei")]
    publish.publish(
        schedule_topic, encode_schedule("Room 5F-B", now, items), 1, True
    ).wait_for_publish(5)
    try:
        dev = firmware("room-n1", mosquitto, app="meeting_panel")
        await wait(dev, "schedule")
        await see(dev, "Weekly sync")
        nid = await send(gw, ["room-n1"], "Rooms close at 20:00 on Friday")
        await see(dev, "Press any button when read")
        assert dev.screen()[0] == "Notice"

        dev.send("button book")  # the first press is the acknowledgement, not a booking
        queued = await wait(dev, "queued", kind="receipt")
        assert queued["notice"] == nid
        await see(dev, "Weekly sync")
        ack = await wait(dev, "ack", id=queued["id"])
        assert (ack["status"], ack["reason"]) == ("accepted", "ok")
        await see(dev, "Read: thank you")
        assert [e for e in dev.of("queued") if e.get("kind") == "button"] == []
        await until_all_read(gw)
    finally:
        publish.publish(schedule_topic, b"", 1, True).wait_for_publish(5)
        publish.loop_stop()
        publish.disconnect()


async def test_a_small_terminal_leaves_the_notice_unread_and_punches_on(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, ["term-n3"])
    # 68 KiB: too small to show a notice. At 64 KiB a notice beside a punch can cost the
    # punch's verdict on screen (the punch is stored and acked; docs/firmware.md, Notices):
    # tests/firmware/test_small_heap_e2e.py holds what 64 KiB keeps.
    dev = firmware("term-n3", mosquitto, heap="68K")
    await wait(dev, "connected")
    nid = await send(gw, ["term-n3"], DRILL, "Fire drill")
    await wait_until(lambda: any("too few to show a must-read notice" in x for x in dev.logs))
    dev.punch("C0001")
    queued = await wait(dev, "queued")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")
    await see(dev, "Li Wei")
    assert await unread(gw) == [(nid, "term-n3")], "still listed by `tack notices`"
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()
