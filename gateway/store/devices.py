"""Registered devices and their presence.

Registration is explicit (``tack devices add``): a device the gateway has never been told about
is refused with ``unknown_device`` however well-formed its messages are.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass

import aiosqlite

from gateway.store.database import joined_transaction, write_transaction
from gateway.store.errors import StoreError
from gateway.store.records import now_ms


class DeviceType(enum.StrEnum):
    CLOCK_TERMINAL = "clock_terminal"
    MEETING_PANEL = "meeting_panel"


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    site: str
    device_type: DeviceType
    name: str = ""
    revoked: bool = False
    room_id: str | None = None  # the room a meeting panel shows (gateway/rooms/)


@dataclass(frozen=True, slots=True)
class PresenceRow:
    device_id: str
    online: bool
    boot: int
    firmware: str | None
    changed_ts_ms: int


class DeviceExistsError(StoreError):
    pass


async def add_device(db: aiosqlite.Connection, device: Device, *, replace: bool = False) -> None:
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    try:
        async with joined_transaction(db, f"adding device {device.device_id}"):
            await db.execute(
                f"{verb} INTO devices (device_id, site, device_type, name, revoked,"
                " created_ts_ms, room_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    device.device_id,
                    device.site,
                    str(device.device_type),
                    device.name,
                    int(device.revoked),
                    now_ms(),
                    device.room_id,
                ),
            )
    except (StoreError, sqlite3.IntegrityError) as exc:
        # Raised as is inside a caller's transaction, wrapped in a StoreError in one of our own.
        cause = exc if isinstance(exc, sqlite3.IntegrityError) else exc.__cause__
        if not isinstance(cause, sqlite3.IntegrityError):
            raise
        raise DeviceExistsError(
            f"device {device.device_id!r} is already registered; revoke it first or pick another id"
        ) from exc


async def assign_room(db: aiosqlite.Connection, device_id: str, room_id: str | None) -> bool:
    """Show ``room_id`` on panel ``device_id`` (``None``: no room); ``False`` if no such device."""
    async with write_transaction(db, f"assigning {device_id} to room {room_id}"):
        cur = await db.execute(
            "UPDATE devices SET room_id = ? WHERE device_id = ?", (room_id, device_id)
        )
    return cur.rowcount > 0


async def revoke_device(db: aiosqlite.Connection, device_id: str) -> bool:
    async with joined_transaction(db, f"revoking device {device_id}"):
        cur = await db.execute("UPDATE devices SET revoked = 1 WHERE device_id = ?", (device_id,))
    return cur.rowcount > 0


async def list_devices(db: aiosqlite.Connection) -> list[Device]:
    async with db.execute(
        "SELECT device_id, site, device_type, name, revoked, room_id FROM devices"
        " ORDER BY device_id"
    ) as cur:
        rows = await cur.fetchall()
    return [Device(r[0], r[1], DeviceType(r[2]), r[3], bool(r[4]), r[5]) for r in rows]


async def get_device(db: aiosqlite.Connection, device_id: str) -> Device | None:
    async with db.execute(
        "SELECT device_id, site, device_type, name, revoked, room_id FROM devices"
        " WHERE device_id = ?",
        (device_id,),
    ) as cur:
        r = await cur.fetchone()
    return Device(r[0], r[1], DeviceType(r[2]), r[3], bool(r[4]), r[5]) if r else None


async def record_presence(
    db: aiosqlite.Connection, device_id: str, online: bool, boot: int, firmware: str | None
) -> bool:
    """Store a presence change unless it is stale; return whether it was applied.

    A last will from boot N that arrives after the device announced boot N+1 is stale, as is
    any message from an older boot than the one stored.
    """
    async with write_transaction(db, f"recording presence of {device_id}"):
        cur = await db.execute(
            "INSERT INTO presence (device_id, online, boot, firmware, changed_ts_ms)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
            " online = excluded.online, boot = excluded.boot,"
            " firmware = coalesce(excluded.firmware, presence.firmware),"
            " changed_ts_ms = excluded.changed_ts_ms"
            " WHERE excluded.boot > presence.boot"
            " OR (excluded.boot = presence.boot AND NOT excluded.online)"
            " OR (excluded.boot = presence.boot AND excluded.online AND NOT presence.online)",
            (device_id, int(online), boot, firmware, now_ms()),
        )
    return cur.rowcount > 0


async def list_presence(db: aiosqlite.Connection) -> list[PresenceRow]:
    async with db.execute(
        "SELECT device_id, online, boot, firmware, changed_ts_ms FROM presence ORDER BY device_id"
    ) as cur:
        rows = await cur.fetchall()
    return [PresenceRow(r[0], bool(r[1]), r[2], r[3], r[4]) for r in rows]
