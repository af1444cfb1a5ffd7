"""Shared pieces of the room tests: a clock the test moves, a real SQLite store with rooms,
bookings and panels, and a room service whose published schedules land in a dict."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosqlite

from devices.protocol import (
    ButtonAction,
    ButtonBody,
    CheckinBody,
    Envelope,
    Schedule,
    decode_schedule,
)
from gateway.config import RoomsSettings
from gateway.rooms import RoomService
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device
from gateway.store.rooms import Booking, Room, replace_rooms, upsert_bookings
from gateway.store.roster import Person, upsert_people
from gateway.verify import Decision

BERLIN = ZoneInfo("Europe/Berlin")
MIN = 60_000


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    """UTC ms of a wall-clock time in Berlin (the site's zone in these tests)."""
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp() * 1000)


@dataclass
class FakeClock:
    now_ms: int

    def __call__(self) -> int:
        return self.now_ms

    def set(self, ts_ms: int) -> None:
        self.now_ms = ts_ms

    def advance(self, minutes: float) -> None:
        self.now_ms += int(minutes * MIN)


@dataclass
class Panel:
    """What a panel would do: press buttons (as decoded envelopes) and keep what it was sent."""

    service: RoomService
    device: Device
    clock: FakeClock
    sent: dict[str, bytes]
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _envelope(self, kind: str, body: CheckinBody | ButtonBody, ts_ms: int | None) -> Envelope:
        n = next(self._ids)
        ts = self.clock() if ts_ms is None else ts_ms
        return Envelope(self.device.device_id, f"{self.device.device_id}-m{n}", n, ts, kind, body)

    async def checkin(self, booking: str, *, pressed_ms: int | None = None) -> Decision:
        env = self._envelope("checkin", CheckinBody(booking), pressed_ms)
        return await self.service.decide(env, self.device)

    async def press(
        self, button: ButtonAction, booking: str | None = None, minutes: int | None = None
    ) -> Decision:
        env = self._envelope("button", ButtonBody(button, booking, minutes), None)
        return await self.service.decide(env, self.device)

    async def replay(self, env: Envelope) -> Decision:
        return await self.service.decide(env, self.device)

    @property
    def schedule(self) -> Schedule:
        return decode_schedule(self.sent[self.device.device_id])


async def open_store(tmp_path: Path) -> aiosqlite.Connection:
    db = await open_database(tmp_path / "tack.db")
    await replace_rooms(db, [Room("r-101", "Room 101"), Room("r-102", "Room 102")])
    await upsert_people(db, [Person("u001", "Li Wei"), Person("u002", "Wang Fang")])
    for dev, room in (("panel-101", "r-101"), ("panel-102", "r-102")):
        await add_device(
            db, Device(dev, "hq", DeviceType.MEETING_PANEL, room_id=room), replace=True
        )
    return db


def booking(
    booking_id: str, start_ms: int, minutes: int, room: str = "r-101", **kw: object
) -> Booking:
    return Booking(
        booking_id,
        room,
        start_ms,
        start_ms + minutes * MIN,
        subject=str(kw.get("subject", f"Meeting {booking_id}")),
        organizer=str(kw.get("organizer", "u001")),
        attendees=tuple(kw.get("attendees", ("u001", "u002"))),  # type: ignore[arg-type]
        status=str(kw.get("status", "confirmed")),
        updated_ts=int(kw.get("updated_ts", 1)),  # type: ignore[call-overload]
    )


async def add_bookings(db: aiosqlite.Connection, *bookings: Booking) -> None:
    await upsert_bookings(db, bookings)


def make_service(
    db: aiosqlite.Connection, clock: FakeClock, sent: dict[str, bytes], **rooms: object
) -> RoomService:
    def publish(device_id: str, payload: bytes) -> bool:
        sent[device_id] = payload
        return True

    return RoomService(
        db,
        RoomsSettings(**rooms),
        BERLIN,
        clock=clock,
        publish=publish,  # type: ignore[arg-type]
    )


__all__ = ["AsyncIterator", "Panel", "upsert_people"]
