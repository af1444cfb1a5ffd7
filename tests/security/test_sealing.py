"""Personal data at rest: absent from the store's bytes, readable through the keyring, bound to
its row, and stores from before the keyring still open."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.protocol import AckStatus, encode_frame
from gateway.security.keyring import SealError, keyring_for
from gateway.security.rotation import rotate
from gateway.store import open_database
from gateway.store import schema as store_schema
from gateway.store.frames import load_frame
from gateway.store.records import catchup_batch
from gateway.verify.face.keys import create_key_file, load_key
from gateway.verify.face.templates import TemplateStore
from gateway.verify.geo.store import recent_fixes
from tests.fixtures.gateway import RawDevice
from tests.security.helpers import (
    CARD,
    JPEG,
    LAT_E7,
    LON_E7,
    fill_store,
    key_ids,
    raw_bytes,
    read_punches,
    settings_in,
)


async def _wait_for(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def _frames(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT count(*) FROM frames").fetchone()[0])


async def test_a_punch_through_the_gateway_leaves_no_card_gps_or_image_in_the_file(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    card = "C7788-NOT-IN-ROSTER"  # the roster's own cards live in the people table
    env = dev.envelope(
        body={
            "card": card,
            "gps": {"lat": LAT_E7, "lon": LON_E7, "acc": 5},
            "photo": {"len": len(JPEG), "sha256": hashlib.sha256(JPEG).hexdigest()},
        }
    )
    dev.send(encode_frame("term-001", env["id"], JPEG), name="frame")
    dev.send(env)
    ack = await dev.next_ack()
    assert ack.status == AckStatus.REJECTED  # unknown card: refused, but kept
    await _wait_for(lambda: _frames(gw.settings.db_path) == 1)

    on_disk = raw_bytes(gw.settings.db_path)
    assert card.encode() not in on_disk
    assert str(LAT_E7).encode() not in on_disk
    assert str(LON_E7).encode() not in on_disk
    assert JPEG[200:264] not in on_disk

    credential, body = read_punches(gw.settings)[env["id"]]
    assert credential == card
    assert body["gps"] == {"lat": LAT_E7, "lon": LON_E7, "acc": 5}
    assert body["photo"]["len"] == len(JPEG)  # the clear part is merged back in
    db = await open_database(gw.settings.db_path)
    try:
        frame = await load_frame(db, "term-001", env["id"], keyring_for(gw.settings))
    finally:
        await db.close()
    assert frame is not None
    assert frame.data == JPEG


async def test_the_bridge_and_the_speed_check_read_the_clear_values(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=5)
    assert CARD.encode() not in raw_bytes(settings.db_path)
    db = await open_database(settings.db_path)
    try:
        batch = await catchup_batch(db, 10, 0, keyring_for(settings))
        fixes = await recent_fixes(db, 0, keyring_for(settings))
    finally:
        await db.close()
    assert [r.credential for r in batch] == [CARD] * 5
    assert fixes["u001"].lat == pytest.approx(LAT_E7 / 1e7)


async def test_a_ciphertext_copied_onto_another_row_fails_its_check(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=2, frames=2)
    with sqlite3.connect(settings.db_path) as raw:
        raw.execute(
            "UPDATE records SET sealed = (SELECT sealed FROM records WHERE msg_id = 'm0')"
            " WHERE msg_id = 'm1'"
        )
        raw.execute(
            "UPDATE frames SET data = (SELECT data FROM frames WHERE msg_id = 'm0')"
            " WHERE msg_id = 'm1'"
        )
    with pytest.raises(SealError, match="copied from another row"):
        read_punches(settings)
    db = await open_database(settings.db_path)
    try:
        ring = keyring_for(settings)
        assert (await load_frame(db, "term-01", "m0", ring)) is not None
        with pytest.raises(SealError):
            await load_frame(db, "term-01", "m1", ring)
    finally:
        await db.close()


def _v9_store(db_path: Path, face_key: bytes) -> None:
    """A store as Tack wrote it before the keyring: schema 9, everything in the clear, face
    templates under the single face.key."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as db:
        for n in range(1, 10):
            db.executescript(getattr(store_schema, f"_DDL_V{n}"))
        db.execute("PRAGMA user_version = 9")
        db.execute(
            "INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms,"
            " person_id, credential, body, status, reason, verdict, sync_state) VALUES"
            " ('term-01', 'old-1', 1, 'punch', 1, 1, 'u001', ?, ?, 'accepted', 'ok', '{}',"
            " 'pending')",
            (CARD, json.dumps({"card": CARD, "gps": {"lat": LAT_E7, "lon": LON_E7}})),
        )
        db.execute(
            "INSERT INTO frames (device_id, msg_id, sha256, bytes, data, received_ts_ms)"
            " VALUES ('term-01', 'old-1', 'x', ?, ?, 1)",
            (len(JPEG), JPEG),
        )


async def test_a_store_from_before_the_keyring_reads_and_rotation_seals_it(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    create_key_file(settings.face_key_file)
    face_key = load_key(settings.face_key_file)
    _v9_store(settings.db_path, face_key)
    db = await open_database(settings.db_path)  # migrates to the current schema
    try:
        await TemplateStore(db, face_key).add("u001", [np.ones(128)], source="cli")
    finally:
        await db.close()
    assert not settings.keyring_file.exists()

    # The keyring is made from face.key, so the old templates open under it.
    ring = keyring_for(settings)
    assert ring.current_id in key_ids(settings.db_path)
    assert read_punches(settings)["old-1"][0] == CARD
    db = await open_database(settings.db_path)
    try:
        assert len((await TemplateStore(db, ring).load()).templates) == 1
    finally:
        await db.close()
    assert CARD.encode() in raw_bytes(settings.db_path)  # still clear until rotated

    report = await rotate(settings, actor="cli:test")
    assert report.resealed == {"records": 1, "frames": 1, "face_templates": 1}
    assert key_ids(settings.db_path) == {report.new_key}
    assert CARD.encode() not in raw_bytes(settings.db_path)
    assert JPEG[200:264] not in raw_bytes(settings.db_path)
    assert read_punches(settings)["old-1"][0] == CARD
    db = await open_database(settings.db_path)
    try:
        assert len((await TemplateStore(db, keyring_for(settings)).load()).templates) == 1
    finally:
        await db.close()
