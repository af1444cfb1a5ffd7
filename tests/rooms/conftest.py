from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import pytest

from gateway.rooms import RoomService
from gateway.store.devices import get_device
from tests.rooms.support import FakeClock, Panel, local, make_service, open_store


@dataclass
class Site:
    db: aiosqlite.Connection
    clock: FakeClock
    service: RoomService
    sent: dict[str, bytes]
    panel: Panel  # shows r-101
    other: Panel  # shows r-102


@pytest.fixture
async def site_rooms(tmp_path: Path) -> AsyncIterator[Site]:
    db = await open_store(tmp_path)
    clock = FakeClock(local(2026, 3, 10, 9, 0))
    sent: dict[str, bytes] = {}
    service = make_service(db, clock, sent)
    p1, p2 = await get_device(db, "panel-101"), await get_device(db, "panel-102")
    assert p1 is not None
    assert p2 is not None
    try:
        yield Site(
            db,
            clock,
            service,
            sent,
            Panel(service, p1, clock, sent),
            Panel(service, p2, clock, sent),
        )
    finally:
        await db.close()
