"""Write-back through the real HTTP backend simulator: every change made at a panel reaches
the backend once, even when answers are lost after the backend applied the change and the
gateway restarts in between; reminders go out once each."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import httpx

from cloud_bridge.dingtalk import DingTalkAdapter
from cloud_bridge.roomsync import RoomSync
from devices.protocol import ButtonAction
from gateway.rooms.store import outbox_counts
from gateway.store import open_database
from gateway.store.devices import get_device
from simulators.backend import BackendServer
from tests.rooms.support import (
    FakeClock,
    Panel,
    add_bookings,
    booking,
    local,
    make_service,
    open_store,
)


async def _sim(backend: BackendServer, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        resp = await client.request(method, path, **kw)
    resp.raise_for_status()
    return resp.json()


async def _drain(sync: RoomSync, db: aiosqlite.Connection, max_rounds: int = 20) -> None:
    for _ in range(max_rounds):
        await sync.round(_access(db))
        if not (await outbox_counts(db)).get("pending"):
            return


async def test_changes_reach_the_backend_once_despite_lost_answers_and_a_restart(
    tmp_path: Path, backend: BackendServer
) -> None:
    directory = backend.state.directory
    start = local(2026, 3, 10, 10)
    directory.put_booking("bk-10", "r-101", start, start + 60 * 60_000, subject="Plan")
    clock = FakeClock(local(2026, 3, 10, 9, 56))
    db = await open_store(tmp_path)
    await add_bookings(db, booking("bk-10", start, 60, attendees=("u0001", "u0002")))
    service = make_service(db, clock, {})
    device = await get_device(db, "panel-101")
    assert device is not None
    panel = Panel(service, device, clock, {})
    await service.tick()  # the 5-minute reminder is due
    assert (await panel.checkin("bk-10")).accepted
    clock.set(local(2026, 3, 10, 10, 50))
    assert (await panel.press(ButtonAction.EXTEND, "bk-10", 30)).accepted
    assert (await panel.press(ButtonAction.RELEASE, "bk-10")).accepted  # ended 10:50
    assert (await panel.press(ButtonAction.BOOK, minutes=15)).accepted
    async with db.execute("SELECT idem_key FROM room_changes WHERE sync_state = 'pending'") as cur:
        keys = sorted([str(r[0]) async for r in cur])
    assert len(keys) == 5  # reminder, check-in, extend, end, book

    # The backend applies the first two calls but their answers are lost.
    await _sim(backend, "PUT", "/_sim/meetingrooms/drop_answers", params={"count": 2})
    adapter = DingTalkAdapter(backend.base_url, "tack-demo", "tack-demo-secret")
    sync = RoomSync(adapter, clock=clock, backoff_base_s=0.0, backoff_max_s=0.0)
    try:
        await sync.round(_access(db))  # stops at the first lost answer
    finally:
        await adapter.aclose()
    assert sync.counters.retried == 1
    await db.close()

    # Restart: a new connection, adapter and drainer pick up the same outbox.
    db = await open_database(tmp_path / "tack.db")
    adapter = DingTalkAdapter(backend.base_url, "tack-demo", "tack-demo-secret")
    try:
        await _drain(RoomSync(adapter, clock=clock, backoff_base_s=0.0, backoff_max_s=0.0), db)
    finally:
        await adapter.aclose()
    counts = await outbox_counts(db)
    await db.close()
    assert counts == {"synced": 5, "skipped": 1}  # the 15-minute reminder came too late

    writes = await _sim(backend, "GET", "/_sim/meetingrooms/writes")
    assert sorted([*writes["changes"], *writes["notifications"]]) == keys  # each applied once
    assert writes["calls"] >= 7  # five changes, two of them sent twice
    assert [n["userids"] for n in writes["notifications"].values()] == [["u0001", "u0002"]]
    assert [c["op"] for c in writes["changes"].values()] == ["checkin", "extend", "end", "book"]
    b10 = directory.booking("bk-10")
    assert b10 is not None
    assert b10["end_time"] == local(2026, 3, 10, 10, 50)  # extended to 11:30, then ended
    page, _ = directory.bookings_page(0, None, 100)
    booked = [b for b in page if b["booking_id"].startswith("tk-")]
    assert [(b["start_time"], b["end_time"]) for b in booked] == [
        (local(2026, 3, 10, 10, 50), local(2026, 3, 10, 11, 5))
    ]


def _access(db: aiosqlite.Connection) -> Any:
    @contextlib.asynccontextmanager
    async def access() -> AsyncIterator[aiosqlite.Connection]:
        yield db

    return access
