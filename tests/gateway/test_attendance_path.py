"""The attendance decision on the real ingest path: policy, geofences and faces, through a real
broker into a real gateway, answered to a device."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices.protocol import AckStatus, ReasonCode, encode_frame
from gateway.security.keyring import keyring_for
from gateway.security.sealed_fields import open_record
from gateway.store import open_database
from gateway.verify.geo.fence import fence_from_spec
from gateway.verify.geo.store import replace_fences
from tests.fixtures.faces import CHIRAC, MULTI, PUTIN, enrol_face_site
from tests.fixtures.gateway import RawDevice, count_records

OFFICE = (31.2304, 121.4737)  # lat, lon of the fence's centre


def _gps(lat: float, lon: float) -> dict[str, int]:
    return {"lat": round(lat * 1e7), "lon": round(lon * 1e7), "acc": 5}


async def test_a_repeat_within_the_window_is_answered_already_recorded(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"], attendance={"repeat_window_s": 120})
    dev = raw_device("term-001")
    first, second = dev.envelope(), dev.envelope()
    dev.send(first)
    a = await dev.next_ack()
    dev.send(second)
    b = await dev.next_ack()
    assert (a.status, a.reason) == (AckStatus.ACCEPTED, ReasonCode.OK)
    assert (b.status, b.reason) == (AckStatus.REJECTED, ReasonCode.REPEAT_PUNCH)
    assert b.verdict is not None
    assert b.verdict.ok, "a repeat is not a failure for the person at the door"
    assert b.verdict.text.startswith("Already recorded at ")
    # Kept for the audit trail, never uploaded as a second attendance record.
    assert count_records(gw.settings.db_path, msg_id=second["id"], sync_state="local") == 1


async def test_an_outbox_replay_is_decided_in_order_as_it_would_have_been_live(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    """Five punches of one card sent together (a terminal's outbox after an outage), and a
    punch of another card among them: the first of the card clocks in, the four after it are
    repeats (each decided with the one before it committed), all stored in the order sent."""
    gw = await gateway_factory(devices=["term-001"], attendance={"repeat_window_s": 120})
    dev = raw_device("term-001")
    replay = [dev.envelope() for _ in range(5)]
    other = dev.envelope(body={"card": "C0002"})
    for env in [*replay[:2], other, *replay[2:]]:
        dev.send(env)
    acks = {a.msg_id: a for a in [await dev.next_ack() for _ in range(6)]}
    assert [acks[e["id"]].reason for e in replay] == [ReasonCode.OK] + [ReasonCode.REPEAT_PUNCH] * 4
    assert acks[other["id"]].reason is ReasonCode.OK
    with sqlite3.connect(gw.settings.db_path) as con:
        stored = [
            r[0]
            for r in con.execute("SELECT msg_id FROM records WHERE person_id = 'u001' ORDER BY id")
        ]
    assert stored == [e["id"] for e in replay]
    # One attendance record to upload, not five.
    assert count_records(gw.settings.db_path, sync_state="pending") == 2


async def test_geofence_decides_where_a_punch_counts(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice], tmp_path: Path
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    db = await open_database(gw.settings.db_path)
    try:
        spec = {"center": list(OFFICE), "radius_m": 200}
        await replace_fences(db, gw.settings.site, [fence_from_spec("office", "circle", spec)])
    finally:
        await db.close()
    await asyncio.sleep(1.0)  # the registry refresh (0.5 s) picks the new fence up
    dev = raw_device("term-001")
    now = int(time.time() * 1000)
    here = _gps(*OFFICE) | {"ts": now}
    inside = dev.envelope(body={"card": "C0001", "gps": here | {"prov": "gps"}})
    outside = dev.envelope(body={"card": "C0002", "gps": _gps(31.25, 121.50) | {"ts": now}})
    # A phone's fix at the right place, flagged by its platform as a mock location.
    mocked = dev.envelope(body={"card": "C0001", "gps": here | {"prov": "fused", "mock": True}})
    for env in (inside, outside, mocked):
        dev.send(env)
    acks = {a.msg_id: a for a in [await dev.next_ack() for _ in range(3)]}
    assert acks[inside["id"]].reason is ReasonCode.OK
    assert acks[outside["id"]].reason is ReasonCode.OUTSIDE_GEOFENCE
    assert acks[outside["id"]].status is AckStatus.REJECTED
    assert acks[mocked["id"]].reason is ReasonCode.GPS_MOCK
    assert acks[mocked["id"]].status is AckStatus.REJECTED
    with sqlite3.connect(gw.settings.db_path) as con:
        row = con.execute(
            "SELECT device_id, msg_id, key_id, sealed, credential, body FROM records"
            " WHERE msg_id = ?",
            (inside["id"],),
        ).fetchone()
    _, body = open_record(keyring_for(gw.settings), *row)  # the GPS fix is sealed at rest
    assert body["gps"]["prov"] == "gps", "the fix's provider is kept with the record"


@pytest.fixture
def face_gateway(gateway_factory: Callable[..., Any], tmp_path: Path) -> Callable[[], Any]:
    """A gateway with the face check on, Putin enrolled behind card F0001."""

    async def make() -> Any:
        face = await enrol_face_site(tmp_path / "data", tmp_path / "face.key")
        return await gateway_factory(devices=["term-001"], face=face)

    return make


def _punch_with_frame(dev: RawDevice, jpeg: bytes | None, photo: bytes) -> dict[str, Any]:
    body = {
        "card": "F0001",
        "photo": {"len": len(photo), "sha256": hashlib.sha256(photo).hexdigest()},
    }
    env = dev.envelope(body=body)
    if jpeg is not None:
        dev.send(encode_frame("term-001", env["id"], jpeg), name="frame")
    dev.send(env)
    return env


async def test_card_and_face_match_mismatch_and_missing_frame(
    face_gateway: Callable[[], Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await face_gateway()
    dev = raw_device("term-001")
    same = PUTIN[1].read_bytes()
    _punch_with_frame(dev, same, same)
    match = await dev.next_ack(30)
    assert (match.status, match.reason) == (AckStatus.ACCEPTED, ReasonCode.OK)

    other = CHIRAC.read_bytes()
    _punch_with_frame(dev, other, other)
    mismatch = await dev.next_ack(30)
    assert (mismatch.status, mismatch.reason) == (AckStatus.REJECTED, ReasonCode.FACE_MISMATCH)

    lost = PUTIN[2].read_bytes()
    _punch_with_frame(dev, None, lost)  # the frame never arrives
    missing = await dev.next_ack(30)
    assert missing.reason is ReasonCode.FACE_NOT_FOUND

    corrupt = same[: len(same) // 3]  # a JPEG cut short by the camera
    _punch_with_frame(dev, corrupt, corrupt)
    broken = await dev.next_ack(30)
    assert broken.reason in (ReasonCode.IMAGE_CORRUPT, ReasonCode.FACE_NOT_FOUND)
    crowd = MULTI.read_bytes()  # a bystander in the frame
    _punch_with_frame(dev, crowd, crowd)
    several = await dev.next_ack(30)
    assert several.reason is ReasonCode.FACE_MULTIPLE

    wall = _blank_jpeg()  # the camera saw a wall
    _punch_with_frame(dev, wall, wall)
    nobody = await dev.next_ack(30)
    assert nobody.reason is ReasonCode.FACE_NOT_FOUND
    with sqlite3.connect(gw.settings.db_path) as db:
        rows = db.execute("SELECT reason FROM records ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [
        "ok",
        "face_mismatch",
        "face_not_found",
        broken.reason,
        "face_multiple",
        "face_not_found",
    ]


def _blank_jpeg() -> bytes:
    import cv2
    import numpy as np

    img = np.full((480, 640, 3), 180, dtype=np.uint8)
    cv2.rectangle(img, (100, 100), (300, 300), (90, 90, 90), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf.tobytes())


async def test_shifts_pulled_from_the_backend_apply_from_the_next_registry_refresh(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    """The gateway keeps the effective shifts between refreshes instead of reading them for every
    punch; a pull by the bridge (another connection) still counts within one refresh."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from gateway.attendance.policy import Shift
    from gateway.attendance.shifts import replace_shifts

    zone = ZoneInfo("Asia/Shanghai")
    now = dt.datetime.now(zone)

    def hhmm(hours: int) -> str:
        return (now + dt.timedelta(hours=hours)).strftime("%H:%M")

    # The config's shift starts in an hour: a punch now is on time. The backend's started two
    # hours ago: a punch now is late.
    configured = {"name": "config", "start": hhmm(1), "end": hhmm(5), "days": list(range(1, 8))}
    gw = await gateway_factory(
        devices=["term-001"],
        attendance={"repeat_window_s": 0, "timezone": "Asia/Shanghai", "shifts": [configured]},
    )
    start = (now - dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
    end = (now + dt.timedelta(hours=4)).time().replace(second=0, microsecond=0)
    dev = raw_device("term-001")
    dev.send(dev.envelope())
    before = await dev.next_ack()
    assert before.verdict is not None
    assert before.verdict.cls == "in", before.verdict
    db = await open_database(gw.settings.db_path)
    try:
        shift = Shift("backend-day", start, end, days=frozenset(range(1, 8)), grace_in_min=0)
        await replace_shifts(db, [("s-1", shift)])
    finally:
        await db.close()
    await asyncio.sleep(1.0)  # the registry refresh (0.5 s) reads the new shifts
    dev.send(dev.envelope(body={"card": "C0002"}))
    after = await dev.next_ack()
    assert after.verdict is not None
    assert after.verdict.cls == "late", after.verdict
