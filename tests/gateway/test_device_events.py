"""What the gateway does with the rest of what devices send: camera frames, meeting-room
events, and the time it gives a device that comes online."""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import AckStatus, ReasonCode, encode_frame, topic
from gateway.security.keyring import Keyring
from gateway.security.sealed_fields import open_frame, open_record
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import RawDevice, count_records

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"


def frames(db_path: Any) -> list[tuple[str, str, int, bytes]]:
    """Frames as stored, opened with the keyring beside the store (they are sealed at rest)."""
    ring = Keyring.load(db_path.parent / "keyring.json")
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT device_id, msg_id, bytes, key_id, data FROM frames ORDER BY 2")
        return [(d, m, n, open_frame(ring, d, m, k, data)) for d, m, n, k, data in rows]


async def wait_for(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_frame_is_stored_once_and_the_punch_refers_to_it(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    env = dev.envelope()
    env["body"] = {
        "card": "C0001",
        "gps": {"lat": 312304017, "lon": 1214737000, "acc": 5},
        "photo": {"len": len(JPEG), "sha256": hashlib.sha256(JPEG).hexdigest()},
    }
    for _ in range(2):  # a resend carries the frame again
        dev.send(encode_frame("term-001", env["id"], JPEG), name="frame")
        dev.send(env)
    first, second = await dev.next_ack(), await dev.next_ack()
    assert (first.status, second.status) == (AckStatus.ACCEPTED, AckStatus.DUPLICATE)
    await wait_for(lambda: len(frames(gw.settings.db_path)) == 1)
    assert frames(gw.settings.db_path) == [("term-001", env["id"], len(JPEG), JPEG)]
    with sqlite3.connect(gw.settings.db_path) as db:
        row = db.execute(
            "SELECT device_id, msg_id, key_id, sealed, credential, body FROM records"
            " WHERE msg_id = ?",
            (env["id"],),
        ).fetchone()
    _, body = open_record(Keyring.load(gw.settings.keyring_file), *row)
    assert body["gps"] == {"lat": 312304017, "lon": 1214737000, "acc": 5}


async def test_bad_frames_are_counted_and_not_stored(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    good = encode_frame("term-001", "m1", JPEG)
    dev.send(good[:-10], name="frame")  # shorter than its header says
    dev.send(b"no header line", name="frame")
    dev.send(encode_frame("term-999", "m2", JPEG), name="frame", device="term-999")  # unknown
    dev.send(good, name="frame")  # then a good one: the bad ones did not block anything
    await wait_for(lambda: len(frames(gw.settings.db_path)) == 1)
    invalid = "tack_invalid_messages_total"
    assert gw.metrics.total(invalid, reason="invalid_value") == 1
    assert gw.metrics.total(invalid, reason="malformed_json") == 1
    assert gw.metrics.total(invalid, reason="unknown_device") == 1


async def test_meeting_room_events_are_stored_locally_and_acknowledged(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["room-1"])
    dev = raw_device("room-1")
    checkin = dev.envelope(kind="checkin", body={"booking": "bk-42"})
    book = dev.envelope(kind="button", body={"button": "book", "minutes": 15})
    dev.send(checkin, name="checkin")
    dev.send(book, name="button")
    acks = {a.msg_id: a for a in (await dev.next_ack(), await dev.next_ack())}
    # Answered by the room service (tests/rooms has the room flows); this device shows no room.
    for ack in acks.values():
        assert ack.reason is ReasonCode.BOOKING_NOT_FOUND
        assert ack.verdict is not None
        assert ack.verdict.text == "Panel has no room: see facilities"
    # Stored, but not attendance: the bridge does not upload them.
    assert count_records(gw.settings.db_path, device_id="room-1", sync_state="local") == 2


async def test_a_device_that_comes_online_gets_the_time(
    gateway_factory: Callable[..., Any], mosquitto: Mosquitto, site: str
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    got: queue.Queue[bytes] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"time-{site}")
    c.on_message = lambda _c, _u, m: got.put(m.payload)
    c.connect(mosquitto.host, mosquitto.port)
    c.subscribe(topic(site, "term-001", "cmd", "time"), qos=1)
    c.loop_start()
    try:
        await asyncio.sleep(0.1)
        birth = b'{"v":1,"online":true,"boot":1,"fw":"t"}'
        c.publish(topic(site, "term-001", "state", "online"), birth, qos=1, retain=True)
        raw = await asyncio.to_thread(got.get, True, 10)
        sent = json.loads(raw)["ts"]
        assert abs(sent - time.time() * 1000) < 5000
        assert gw.metrics.total("tack_time_syncs_total") == 1
    finally:
        c.publish(topic(site, "term-001", "state", "online"), b"", qos=1, retain=True)
        c.disconnect()
        c.loop_stop()
