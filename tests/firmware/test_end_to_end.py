"""The real firmware, on the real MicroPython interpreter, against Mosquitto and the gateway.

Each device here is a ``micropython`` process running ``firmware/main.py`` unchanged; the test
types its inputs on stdin and reads what it shows from its ``EVT`` lines, and reads what the
gateway stored from the gateway's SQLite file. Broker outages, SIGKILLs and a damaged outbox
file are real too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.attendance.balances import DAY, HOUR, LeaveBalance, replace_balances
from gateway.security.keyring import keyring_for
from gateway.security.sealed_fields import open_frame, open_record
from gateway.service import Gateway
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device
from gateway.store.rooms import Booking, Room, replace_rooms, upsert_bookings
from simulators.devices.firmware import FirmwareDevice
from simulators.gps import sentence
from simulators.mosquitto import Mosquitto
from tests.firmware.rigs import (
    Start,
    firmware_fixture,  # noqa: F401 (the fixture `firmware`)
    gateway_on_fixture,  # noqa: F401 (the fixture `gateway_on`)
    showed,
    wait,
    wait_until,
)
from tests.fixtures.faces import CHIRAC, FACE_CARD, PUTIN, enrol_face_site

pytestmark = pytest.mark.slow


def records(gw: Gateway, device_id: str) -> list[tuple[str, int, str, str]]:
    with sqlite3.connect(gw.settings.db_path) as db:
        return list(
            db.execute(
                "SELECT msg_id, seq, status, reason FROM records WHERE device_id = ? ORDER BY id",
                (device_id,),
            )
        )


def acked(dev: FirmwareDevice) -> list[str]:
    return [e["id"] for e in dev.of("ack") if e["action"] == "remove"]


async def test_punch_shows_the_verdict(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, ["term-1"])
    dev = firmware("term-1", mosquitto)
    await wait(dev, "connected")
    dev.punch("C0001")
    queued = await wait(dev, "queued")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"], ack["action"]) == ("accepted", "ok", "remove")
    await wait(dev, "time")  # the gateway set the terminal's clock when it came online
    await wait_until(lambda: showed(dev, "Li Wei"))
    assert not any("Clock not set" in line for line in dev.screen()), dev.screen()
    # The verdict's text is the shift policy's, which depends on the time of day.
    assert showed(dev, "✓ Li Wei"), dev.screen()
    assert records(gw, "term-1") == [(queued["id"], queued["seq"], "accepted", "ok")]

    dev.punch("NOPE99")
    refused = await wait(dev, "queued", seq=queued["seq"] + 1)
    ack = await wait(dev, "ack", id=refused["id"])
    assert (ack["status"], ack["reason"]) == ("rejected", "unknown_credential")
    await wait_until(lambda: showed(dev, "Card not recognised"))


async def test_unregistered_terminal_is_told_so(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    await gateway_on(mosquitto, [])
    dev = firmware("term-x", mosquitto)
    dev.punch("C0001")
    queued = await wait(dev, "queued")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["reason"], ack["action"]) == ("unknown_device", "remove")
    await wait_until(lambda: showed(dev, "not registered"))


async def test_chinese_screen(mosquitto: Mosquitto, gateway_on: Any, firmware: Start) -> None:
    await gateway_on(mosquitto, ["term-zh"])
    dev = firmware("term-zh", mosquitto, lang="zh")
    await wait(dev, "connected")
    await wait_until(lambda: any("请刷卡" in line for line in dev.screen()))
    dev.punch("C0002")
    queued = await wait(dev, "queued")
    await wait(dev, "ack", id=queued["id"])
    await wait_until(lambda: showed(dev, "Wang Fang"))


async def test_offline_punches_wait_in_the_outbox_and_drain_in_order(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-2"])
    dev = firmware("term-2", broker)
    await wait(dev, "connected")
    broker.stop()
    await wait(dev, "disconnected")
    for _ in range(10):
        dev.punch("C0001")
    await wait_until(lambda: len(dev.of("queued")) == 10)
    await wait_until(lambda: any("10 waiting" in line for line in dev.screen()))
    assert records(gw, "term-2") == []

    broker.start()
    await wait_until(lambda: len(set(acked(dev))) == 10, 30)
    rows = records(gw, "term-2")
    queued = [(e["id"], e["seq"]) for e in dev.of("queued")]
    assert [(r[0], r[1]) for r in rows] == queued, "stored in the order they were punched"
    assert all(r[2] == "accepted" for r in rows)
    await wait_until(lambda: not any("waiting" in line for line in dev.screen()))


async def test_sigkill_mid_drain_loses_nothing_and_duplicates_nothing(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-3"])
    dev = firmware("term-3", broker, send_window=2)
    await wait(dev, "connected")
    broker.stop()
    await wait(dev, "disconnected")
    for _ in range(40):
        dev.punch("C0002")
    await wait_until(lambda: len(dev.of("queued")) == 40)
    punched = [(e["id"], e["seq"]) for e in dev.of("queued")]

    broker.start()
    await wait_until(lambda: len(acked(dev)) >= 5, 30)
    dev.kill()  # mid-drain: some acked, some in flight, most still waiting
    assert len(acked(dev)) < 40, "the drain was over before the kill; the test proves nothing"
    dev.restart()
    boot = await wait(dev, "boot")
    assert boot["outbox"]["damaged"] == 0
    await wait_until(lambda: len(records(gw, "term-3")) == 40, 40)
    await wait_until(lambda: dev.of("stopped") == [] and _outbox_empty(dev), 20)
    rows = records(gw, "term-3")
    assert sorted((r[0], r[1]) for r in rows) == sorted(punched), "0 lost, 0 duplicated"
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "stored in seq order"


def _outbox_empty(dev: FirmwareDevice) -> bool:
    screen = dev.screen()
    return bool(screen) and not any("waiting" in line for line in screen)


async def test_truncated_outbox_is_repaired_and_the_rest_delivered(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-4"])
    broker.stop()
    dev = firmware("term-4", broker)
    for _ in range(5):
        dev.punch("C0001")
    await wait_until(lambda: len(dev.of("queued")) == 5)
    punched = [e["id"] for e in dev.of("queued")]
    dev.kill()
    log = dev.cfg.data_dir / "flash" / "outbox.log"
    size = log.stat().st_size
    with log.open("r+b") as f:
        f.truncate(size - 7)  # a torn last write: the power went mid-record

    broker.start()
    dev.restart()
    boot = await wait(dev, "boot")
    assert boot["outbox"]["truncated_bytes"] > 0, boot
    assert boot["outbox"]["records"] == 4
    await wait_until(lambda: len(records(gw, "term-4")) == 4, 30)
    assert [r[0] for r in records(gw, "term-4")] == punched[:4]


async def test_thousand_punches_in_64k_of_heap(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, ["term-5"])
    dev = firmware("term-5", mosquitto, heap="64K", send_window=16)
    await wait(dev, "connected")
    for i in range(1000):
        dev.punch(f"C{1 + i % 2:04d}")
    try:
        await wait_until(lambda: len(acked(dev)) == 1000 or not dev.running, 110)
    except AssertionError:
        raise AssertionError(f"{len(acked(dev))} of 1000 acked; device:\n{dev.tail()}") from None
    assert dev.running, dev.tail()
    rows = records(gw, "term-5")
    assert len(rows) == 1000
    assert len({r[0] for r in rows}) == 1000
    assert [r[1] for r in rows] == list(range(1, 1001))
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()


def nmea(body: str) -> str:
    return sentence(body) + "\n"


async def test_punch_carries_gps_fix_and_camera_frame(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start, tmp_path: Path
) -> None:
    gw = await gateway_on(mosquitto, ["term-6"])
    gps = tmp_path / "gps.nmea"
    camera = tmp_path / "frame.jpg"
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"  # what the sensor gave
    camera.write_bytes(jpeg)
    dev = firmware("term-6", mosquitto, gps_path=str(gps), camera_path=str(camera))
    await wait(dev, "connected")
    with gps.open("a") as f:  # the GPS simulator writes its UART lines
        f.write(nmea("GPRMC,081836.00,A,3113.8241,N,12128.4221,E,0.0,0.0,271126,,,A"))
        f.write(nmea("GPGGA,081836.00,3113.8241,N,12128.4221,E,1,08,0.9,10.0,M,0.0,M,,"))
    await wait_until(lambda: any("GPS fix" in line for line in dev.screen()))
    dev.punch("C0001")
    queued = await wait(dev, "queued")
    await wait(dev, "ack", id=queued["id"])
    ring = keyring_for(gw.settings)  # the GPS fix and the frame are sealed at rest
    with sqlite3.connect(gw.settings.db_path) as db:
        row = db.execute(
            "SELECT device_id, msg_id, key_id, sealed, credential, body FROM records"
            " WHERE msg_id = ?",
            (queued["id"],),
        ).fetchone()
        stored = [
            (open_frame(ring, dev_id, msg_id, kid, data),)
            for dev_id, msg_id, kid, data in db.execute(
                "SELECT device_id, msg_id, key_id, data FROM frames WHERE msg_id = ?",
                (queued["id"],),
            )
        ]
    _, body = open_record(ring, *row)
    assert (body["gps"]["lat"], body["gps"]["lon"]) == (312304017, 1214737017)
    assert body["photo"]["len"] == len(jpeg)
    assert stored == [(jpeg,)], "the frame reached the gateway byte for byte"
    assert not list((dev.cfg.data_dir / "flash" / "frames").iterdir()), "frame left on flash"


async def test_panel_shows_its_schedule_checks_in_and_keeps_it_over_a_reboot(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start, site: str
) -> None:
    gw = await gateway_on(mosquitto, [])
    now = int(time.time() * 1000)
    db = await open_database(gw.settings.db_path)
    try:  # the room, its bookings (as the bridge stores them) and its panel
        await replace_rooms(db, [Room("r-5fa", "5F-A")])
        await upsert_bookings(
            db,
            [
                Booking("bk-1", "r-5fa", now - 180_000, now + 1_800_000, subject="Weekly sync"),
                Booking("bk-2", "r-5fa", now + 3_600_000, now + 5_400_000, subject="设计评审"),
            ],
        )
        panel = Device("room-1", site, DeviceType.MEETING_PANEL, room_id="r-5fa")
        await add_device(db, panel, replace=True)
    finally:
        await db.close()
    await gw.registry.reload()

    dev = firmware("room-1", mosquitto, app="meeting_panel")
    await wait(dev, "schedule")
    await wait_until(lambda: any("Weekly sync" in line for line in dev.screen()))
    assert any("设计评审" in line for line in dev.screen()), dev.screen()
    dev.punch("C0001")  # a card at the panel checks the meeting in
    queued = await wait(dev, "queued", kind="checkin")
    ack = await wait(dev, "ack", id=queued["id"])
    assert ack["reason"] == "ok"
    await wait_until(lambda: showed(dev, "Checked in"))
    with sqlite3.connect(gw.settings.db_path) as con:
        (body,) = con.execute(
            "SELECT body FROM records WHERE msg_id = ? AND kind = 'checkin'", (queued["id"],)
        ).fetchone()
    assert json.loads(body) == {"booking": "bk-1"}

    dev.kill()
    dev.cfg.port = 1  # nothing listens: the panel reboots without a network
    dev.restart()
    await wait(dev, "boot")
    await wait_until(lambda: any("Weekly sync" in line for line in dev.screen()))
    assert any("Offline" in line for line in dev.screen()), dev.screen()


async def test_terminal_camera_frame_is_checked_against_the_enrolled_face(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start, tmp_path: Path
) -> None:
    face = await enrol_face_site(tmp_path / "data", tmp_path / "face.key")
    await gateway_on(mosquitto, ["term-7"], face=face)
    camera = tmp_path / "camera.jpg"
    camera.write_bytes(PUTIN[1].read_bytes())  # the sensor sees the card's owner
    dev = firmware("term-7", mosquitto, camera_path=str(camera))
    await wait(dev, "connected")
    dev.punch(FACE_CARD)
    queued = await wait(dev, "queued")
    ack = await wait(dev, "ack", 60, id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok")

    camera.write_bytes(CHIRAC.read_bytes())  # someone else holds the card up
    dev.punch(FACE_CARD)
    queued = await wait(dev, "queued", seq=queued["seq"] + 1)
    ack = await wait(dev, "ack", 60, id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("rejected", "face_mismatch")
    await wait_until(lambda: showed(dev, "✗"))


async def test_a_late_punch_says_so_on_the_terminal(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    start = (now - dt.timedelta(minutes=40)).time().replace(second=0, microsecond=0)
    end = (now + dt.timedelta(hours=6)).time().replace(second=0, microsecond=0)
    shift: dict[str, Any] = {"name": "day", "start": start.isoformat(), "end": end.isoformat()}
    shift |= {"days": [1, 2, 3, 4, 5, 6, 7], "grace_in_min": 5}
    await gateway_on(
        mosquitto,
        ["term-8", "term-9"],
        attendance={"timezone": "Asia/Shanghai", "shifts": [shift]},
    )
    # The gateway says what the punch meant (late, by how much, when); each terminal says it in
    # its own language.
    for device_id, card, lang, words in (
        ("term-8", "C0001", "en", "Late 4"),
        ("term-9", "C0002", "zh", "迟到4"),
    ):
        dev = firmware(device_id, mosquitto, lang=lang)
        await wait(dev, "connected")
        await wait(dev, "time")  # punches carry the gateway's time
        dev.punch(card)
        queued = await wait(dev, "queued")
        ack = await wait(dev, "ack", id=queued["id"])
        assert (ack["status"], ack["reason"]) == ("accepted", "ok")
        await wait_until(lambda: showed(dev, words))  # noqa: B023


async def test_the_leave_key_then_a_card_shows_the_leave_balance(
    mosquitto: Mosquitto, gateway_on: Any, firmware: Start
) -> None:
    gw = await gateway_on(mosquitto, ["term-10", "term-11"])
    db = await open_database(gw.settings.db_path)
    try:  # what the bridge stores from the backend on its roster pass
        balances = [
            LeaveBalance("u001", "annual", 7.5, DAY),
            LeaveBalance("u002", "sick", 12, HOUR),
        ]
        await replace_balances(db, ["u001", "u002"], balances)
    finally:
        await db.close()
    for device_id, card, lang, prompt, words in (
        ("term-10", "C0001", "en", "Leave balance: show your card", "Leave left: annual 7.5 d"),
        ("term-11", "C0002", "zh", "查询假期余额：请刷卡", "剩余假期：sick 12 h"),  # noqa: RUF001
    ):
        # In a board's heap: the query's code is loaded on demand, beside everything else. At
        # 64 KiB on this 64-bit port there is no room left for it (docs/firmware.md, Memory).
        dev = firmware(device_id, mosquitto, lang=lang, heap="72K")
        await wait(dev, "connected")
        dev.send("button leave")
        await wait_until(lambda: any(prompt in line for line in dev.screen()))  # noqa: B023
        dev.punch(card)
        queued = await wait(dev, "queued", kind="query")
        ack = await wait(dev, "ack", id=queued["id"])
        assert (ack["status"], ack["reason"], ack["action"]) == ("accepted", "ok", "remove")
        try:
            await wait_until(lambda: showed(dev, words))  # noqa: B023
        except AssertionError:
            shown = [e["lines"] for e in dev.of("screen")][-6:]
            raise AssertionError(f"{words!r} never shown; screens {shown}\n{dev.tail()}") from None
        # The question is kept at the gateway, never as attendance: nothing was clocked.
        with sqlite3.connect(gw.settings.db_path) as con:
            stored = con.execute(
                "SELECT kind, status, sync_state FROM records WHERE device_id = ?", (device_id,)
            ).fetchall()
        assert stored == [("query", "accepted", "local")]

        # The leave key is good for one card: the next one punches.
        dev.punch(card)
        punched = await wait(dev, "queued", seq=queued["seq"] + 1)
        assert "kind" not in punched
        await wait(dev, "ack", id=punched["id"])
        assert [r[2] for r in records(gw, device_id)] == ["accepted", "accepted"]
        assert not any("MemoryError" in line for line in dev.logs), dev.tail()


async def test_the_leave_key_offline_says_try_later_and_sends_nothing(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-12"])
    broker.stop()
    dev = firmware("term-12", broker)
    await wait_until(lambda: any("Offline" in line for line in dev.screen()))
    dev.send("button leave")
    await wait_until(lambda: any("Leave balance" in line for line in dev.screen()))
    dev.punch("C0001")
    await wait_until(lambda: showed(dev, "Offline: try later"))
    assert dev.of("queued") == [], "an answer for later is no answer: nothing is kept"

    broker.start()
    await wait(dev, "connected", 30)
    dev.punch("C0001")  # an ordinary punch again
    queued = await wait(dev, "queued")
    await wait(dev, "ack", id=queued["id"])
    assert [r[0] for r in records(gw, "term-12")] == [queued["id"]]
