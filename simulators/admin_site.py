"""A small office in a store file, for the admin app's tests and screenshots: accounts of each
role, terminals and panels with presence, people, a day of punches (one with a camera frame,
one dead letter), rooms with bookings, and audit entries. Written with the store's own
functions where they exist, so it is what a real gateway would have written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import aiosqlite

from devices.protocol import Frame
from gateway.admin.accounts import add_account
from gateway.admin.permissions import Role
from gateway.audit import AuditLog
from gateway.config import TackSettings
from gateway.store.database import write_transaction
from gateway.store.devices import Device, DeviceType, add_device, record_presence
from gateway.store.frames import store_frame
from gateway.store.rooms import Booking, Room, replace_rooms, upsert_bookings
from gateway.store.roster import Person, upsert_people

PASSWORD = "correct horse battery"  # every seeded account's; tests and screenshots only
ACCOUNTS = {"alice": Role.ADMIN, "fred": Role.FACILITIES, "vera": Role.VIEWER}
PEOPLE = [
    Person("u001", "Li Wei", card="C0001", department="Sales"),
    Person("u002", "Wang Fang", card="C0002", department="Sales"),
    Person("u003", "Zhang Min", card="C0003", department="R&D"),
    Person("u004", "Chen Jing", card="C0004", department="R&D"),
]
TERMINALS = [
    ("lobby-1", "Lobby door", True, "1.4.2"),
    ("lobby-2", "Lobby side door", True, "1.4.2"),
    ("floor3-east", "3F east", False, "1.4.1"),
]
PANELS = [("room-lotus", "Lotus room panel", "lotus", True, "1.2.0")]
ROOMS = [
    Room("lotus", "Lotus 莲花", capacity=8, location="3F"),
    Room("bamboo", "Bamboo 竹", capacity=4, location="3F"),
]


@dataclass(frozen=True, slots=True)
class Site:
    record_ids: list[int]
    frame_record_id: int


async def seed_site(
    db: aiosqlite.Connection,
    settings: TackSettings,
    now_ms: int,
    *,
    frame_jpeg: bytes | None = None,
) -> Site:
    audit = AuditLog(db, settings.audit_head_file)
    for name, role in ACCOUNTS.items():
        await add_account(db, audit, "cli:setup", name, role, PASSWORD)
    for device_id, name, online, fw in TERMINALS:
        await add_device(db, Device(device_id, settings.site, DeviceType.CLOCK_TERMINAL, name))
        await record_presence(db, device_id, online, 3, fw)
        await audit.append("cli:setup", "device.add", device_id, {"type": "clock_terminal"})
    for device_id, name, room, online, fw in PANELS:
        await add_device(
            db, Device(device_id, settings.site, DeviceType.MEETING_PANEL, name, room_id=room)
        )
        await record_presence(db, device_id, online, 1, fw)
    async with write_transaction(db, "dating presence"):  # as of the seed's clock
        await db.execute("UPDATE presence SET changed_ts_ms = ?", (now_ms - 47 * 60_000,))
    await upsert_people(db, PEOPLE)
    zone = ZoneInfo(settings.attendance.timezone)
    day = dt.datetime.fromtimestamp(now_ms / 1000, zone).date()

    def at(hour: int, minute: int) -> int:
        return int(dt.datetime.combine(day, dt.time(hour, minute), zone).timestamp() * 1000)

    punches = [
        ("lobby-1", "u001", at(8, 52), "accepted", "ok", "synced", None),
        ("lobby-1", "u002", at(8, 57), "accepted", "ok", "synced", None),
        ("lobby-2", "u003", at(9, 3), "accepted", "ok", "synced", None),
        ("lobby-2", "u004", at(9, 14), "accepted", "ok", "pending", None),
        ("floor3-east", None, at(9, 20), "rejected", "unknown_card", "local", None),
        ("lobby-1", "u003", at(9, 31), "accepted", "ok", "failed", "errcode 33012: unknown user"),
    ]
    ids: list[int] = []
    seqs: dict[str, int] = {}
    async with write_transaction(db, "seeding records"):
        for device_id, person, ts, status, reason, sync, error in punches:
            seq = seqs[device_id] = seqs.get(device_id, 0) + 1
            cur = await db.execute(
                "INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms,"
                " person_id, credential, body, status, reason, verdict, sync_state, sync_error)"
                " VALUES (?, ?, ?, 'punch', ?, ?, ?, NULL, '{}', ?, ?, ?, ?, ?)",
                (
                    device_id,
                    f"{device_id}-m{seq}",
                    seq,
                    ts,
                    ts + 40,
                    person,
                    status,
                    reason,
                    json.dumps({"status": status}),
                    sync,
                    error,
                ),
            )
            ids.append(int(cur.lastrowid or 0))
    frame_id = ids[0]
    if frame_jpeg is not None:
        await store_frame(
            db, Frame("lobby-1", "lobby-1-m1", hashlib.sha256(frame_jpeg).hexdigest(), frame_jpeg)
        )
    await replace_rooms(db, ROOMS)
    await upsert_bookings(
        db,
        [
            Booking("b1", "lotus", at(10, 0), at(11, 0), "Weekly sales", "u001", ("u002",)),
            Booking("b2", "lotus", at(14, 0), at(15, 30), "Design review", "u003"),
            Booking("b3", "bamboo", at(16, 0), at(16, 30), "1:1", "u004"),
        ],
    )
    await audit.append("web:alice", "notice.send", "n-0001", {"devices": 3})
    return Site(ids, frame_id)
