"""A meeting-room panel on a real Mosquitto, speaking raw MQTT to a real gateway whose bridge
talks to the HTTP backend simulator: bookings pulled from the backend reach the panel's
retained ``cmd/schedule``, presses are answered with the room service's verdicts, changes are
written back, and a booking changed at the backend while the panel is offline is on the panel
the moment it reconnects. The gateway's room clock is a fake the test moves."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import (
    Ack,
    Presence,
    Schedule,
    decode_ack,
    decode_schedule,
    dumps,
    encode_presence,
    topic,
)
from gateway.service import Gateway
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device
from simulators.backend import BackendServer
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import gateway_settings
from tests.rooms.support import FakeClock, local

pytestmark = pytest.mark.slow

PANEL = "panel-7"
WAIT_S = 20.0  # a bound for things that happen within a few ticks, not a measured time


class MqttPanel:
    """What the panel firmware does on the wire: birth, schedule and ack subscriptions, events."""

    def __init__(
        self, broker: Mosquitto, site: str, clock: FakeClock, boot: int, *, birth: bool = True
    ) -> None:
        self.site, self.clock, self._seq = site, clock, 0
        self.acks: queue.Queue[bytes] = queue.Queue()
        self.schedules: queue.Queue[bytes] = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{site}-{PANEL}-{boot}")
        c.will_set(
            topic(site, PANEL, "state", "online"),
            encode_presence(Presence(online=False, boot=boot)),
            qos=1,
            retain=True,
        )
        c.on_message = self._on_message
        c.connect(broker.host, broker.port)
        c.subscribe(
            [(topic(site, PANEL, "cmd", "ack"), 1), (topic(site, PANEL, "cmd", "schedule"), 1)]
        )
        c.loop_start()
        time.sleep(0.1)  # let the SUBSCRIBE land before the birth is answered
        if birth:
            c.publish(
                topic(site, PANEL, "state", "online"),
                encode_presence(Presence(online=True, boot=boot, firmware="panel-test")),
                qos=1,
                retain=True,
            ).wait_for_publish(5)
        self._client = c

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        (self.schedules if m.topic.endswith("/schedule") else self.acks).put(m.payload)

    def send(self, kind: str, body: dict[str, Any]) -> None:
        self._seq += 1
        env = {
            "v": 1,
            "id": f"{PANEL}-{self._client._client_id.decode()}-{self._seq}",
            "dev": PANEL,
            "seq": self._seq,
            "ts": self.clock(),
            "kind": kind,
            "body": body,
        }
        self._client.publish(
            topic(self.site, PANEL, "evt", kind), dumps(env), qos=1
        ).wait_for_publish(5)

    async def ack(self) -> Ack:
        return decode_ack(await asyncio.to_thread(self.acks.get, True, WAIT_S))

    async def schedule_where(self, ok: Callable[[Schedule], bool]) -> Schedule:
        """The first schedule received (from now) that satisfies ``ok``."""
        deadline = time.monotonic() + WAIT_S
        while True:
            left = deadline - time.monotonic()
            raw = await asyncio.to_thread(self.schedules.get, True, max(left, 0.01))
            s = decode_schedule(raw)
            if ok(s):
                return s

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def _eventually(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def started(
    tmp_path: Path, mosquitto: Mosquitto, backend: BackendServer, site: str
) -> AsyncIterator[tuple[Gateway, FakeClock]]:
    directory = backend.state.directory
    directory.set_rooms(
        [
            {
                "room_id": "r-7",
                "room_name": "Room 7",
                "room_capacity": 8,
                "room_location": "7F",
                "room_status": 1,
            }
        ]
    )
    directory.put_booking(
        "bk-1",
        "r-7",
        local(2026, 3, 10, 10),
        local(2026, 3, 10, 11),
        subject="Plan",
        organizer="u0001",
        attendees=["u0001"],
    )
    directory.put_booking(
        "bk-2", "r-7", local(2026, 3, 10, 11), local(2026, 3, 10, 12), subject="Next"
    )
    settings = gateway_settings(
        tmp_path,
        mosquitto,
        site,
        bridge={
            "enabled": True,
            "base_url": backend.base_url,
            "roster_interval_s": 0.2,
            "interval_s": 0.2,
        },
        attendance={"timezone": "Europe/Berlin"},
        rooms={"tick_s": 0.1},
    )
    db = await open_database(settings.db_path)
    try:
        await add_device(db, Device(PANEL, site, DeviceType.MEETING_PANEL, room_id="r-7"))
    finally:
        await db.close()
    clock = FakeClock(local(2026, 3, 10, 9, 30))
    gw = Gateway(settings, clock=clock)
    await gw.__aenter__()
    try:
        await gw.wait_connected(10)
        yield gw, clock
    finally:
        await gw.__aexit__(None, None, None)


def _has(db_path: Path, booking_id: str) -> bool:
    with sqlite3.connect(db_path) as db:
        return (
            db.execute("SELECT 1 FROM bookings WHERE booking_id = ?", (booking_id,)).fetchone()
            is not None
        )


async def test_a_panel_day_over_mqtt(
    started: tuple[Gateway, FakeClock], mosquitto: Mosquitto, backend: BackendServer, site: str
) -> None:
    gw, clock = started
    panel = MqttPanel(mosquitto, site, clock, boot=1)
    try:
        s = await panel.schedule_where(lambda s: [i.booking for i in s.items] == ["bk-1", "bk-2"])
        assert (s.room, s.items[0].title, s.items[0].state, s.checkin_open_min) == (
            "Room 7",
            "Plan",
            "upcoming",
            5,
        )

        clock.set(local(2026, 3, 10, 9, 57))
        await panel.schedule_where(lambda s: s.items[0].state == "open")
        panel.send("checkin", {"booking": "bk-1"})
        ack = await panel.ack()
        assert (ack.status, ack.reason, ack.verdict and ack.verdict.text) == (
            "accepted",
            "ok",
            "Checked in: until 11:00",
        )
        await panel.schedule_where(lambda s: s.items[0].state == "in" and s.items[0].checked_in)

        panel.send("button", {"button": "book", "minutes": 15})
        ack = await panel.ack()
        assert (ack.status, ack.reason, ack.verdict and ack.verdict.text) == (
            "rejected",
            "room_busy",
            "Room in use until 11:00",
        )
        panel.send("button", {"button": "extend", "booking": "bk-1", "minutes": 30})
        ack = await panel.ack()
        assert (ack.reason, ack.verdict and ack.verdict.text) == (
            "room_busy",
            "Next meeting at 11:00: cannot extend",
        )
    finally:
        panel.close()

    # Offline: the backend moves a meeting into the afternoon meanwhile. An observer (not the
    # panel) sees the gateway publish the new schedule, so the broker holds it retained.
    observer = MqttPanel(mosquitto, site, clock, boot=90, birth=False)
    backend.state.directory.put_booking(
        "bk-3", "r-7", local(2026, 3, 10, 14), local(2026, 3, 10, 15), subject="Moved in"
    )
    await _eventually(lambda: _has(gw.settings.db_path, "bk-3"), "the bridge to pull bk-3")
    try:
        await observer.schedule_where(lambda s: "bk-3" in [i.booking for i in s.items])
    finally:
        observer.close()
    # The panel reconnects (before its birth is even sent): the retained schedule is the new one.
    back = MqttPanel(mosquitto, site, clock, boot=2, birth=False)
    try:
        s = decode_schedule(await asyncio.to_thread(back.schedules.get, True, WAIT_S))
        assert [i.booking for i in s.items] == ["bk-1", "bk-2", "bk-3"]
    finally:
        back.close()

    async def written() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=backend.base_url) as client:
            return (await client.get("/_sim/meetingrooms/writes")).json()  # type: ignore[no-any-return]

    deadline = time.monotonic() + WAIT_S
    while not any(c["op"] == "checkin" for c in (await written())["changes"].values()):
        assert time.monotonic() < deadline, "the check-in never reached the backend"
        await asyncio.sleep(0.05)
