"""The in-memory recent punches and leave (gateway/attendance/recent.py) against a real store:
a classification from memory reads what the store would have given, and falls back to the
store for what memory cannot vouch for."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

import gateway.attendance.recent as recent_module
from gateway.attendance.leave import LeaveDay, upsert_leave
from gateway.attendance.recent import RecentPunches
from gateway.attendance.store import punch_context
from gateway.config import load_settings
from gateway.store import open_database
from gateway.store.records import NewRecord, RecordWriter, SyncState
from gateway.store.roster import Person, upsert_people
from gateway.verify.attendance import AttendanceVerifier

_DAY_MS = 86_400_000
NOW = int(time.time() * 1000)
TODAY = dt.date.fromtimestamp(NOW / 1000)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's clock stays at NOW, so no test meets midnight halfway."""
    monkeypatch.setattr(recent_module, "_now_ms", lambda: NOW)


class HeldReads:
    """The store connection, with the memory's own reads of ``table`` (not the store's answers
    to a classification) held until ``release``."""

    MARKERS = {
        "records": "SELECT device_id, msg_id, device_ts_ms FROM records",
        "leave_days": "SELECT person_id, day FROM leave_days",
    }

    def __init__(self, inner: aiosqlite.Connection, table: str) -> None:
        self._inner = inner
        self._marker = self.MARKERS[table]
        self.release = asyncio.Event()

    async def execute_fetchall(self, sql: str, args: Any) -> Any:
        rows = await self._inner.execute_fetchall(sql, args)
        if sql.startswith(self._marker):
            await self.release.wait()
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def punch(person: str, msg_id: str, ts: int, status: str = "accepted") -> NewRecord:
    return NewRecord(
        "term-1",
        msg_id,
        1,
        "punch",
        ts,
        ts,
        person,
        "C1",
        {"card": "C1"},
        status,
        "ok" if status == "accepted" else "unknown_credential",
        {"ok": status == "accepted", "text": ""},
        SyncState.PENDING,
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_database(tmp_path / "tack.db")
    await upsert_people(conn, [Person("p1", "Alice", "C1"), Person("p2", "Bob", "C2")])
    yield conn
    await conn.close()


async def test_commits_are_seen_from_memory_as_the_store_would_give_them(
    db: aiosqlite.Connection,
) -> None:
    recent = RecentPunches(db)
    async with RecordWriter(
        db, max_batch=10, max_pending=10, on_records=recent.committed
    ) as writer:
        await writer.submit(punch("p1", "before", NOW - 3600_000))  # read at the first punch
        first = await recent.context("p1", NOW, TODAY, ("term-1", "now"))
        assert first.previous == [NOW - 3600_000]
        await writer.submit(punch("p1", "later", NOW - 60_000))  # committed after the read
        await writer.submit(punch("p1", "refused", NOW - 30_000, status="rejected"))
        await writer.submit(punch("p2", "other", NOW - 20_000))
        again = await recent.context("p1", NOW, TODAY, ("term-1", "now"))
    store = await punch_context(
        db,
        "p1",
        NOW - 2 * _DAY_MS,
        NOW + 2 * _DAY_MS,
        TODAY - dt.timedelta(days=1),
        TODAY + dt.timedelta(days=1),
        exclude=("term-1", "now"),
    )
    assert sorted(again.previous) == sorted(store.previous) == [NOW - 3600_000, NOW - 60_000]
    assert recent.store_reads == 0


async def test_a_redelivered_punch_is_not_its_own_repeat(db: aiosqlite.Connection) -> None:
    recent = RecentPunches(db)
    async with RecordWriter(db, max_batch=10, max_pending=10, on_records=recent.committed) as w:
        await recent.context("p1", NOW, TODAY, ("term-1", "x"))
        await w.submit(punch("p1", "m1", NOW))
    context = await recent.context("p1", NOW, TODAY, ("term-1", "m1"))
    assert context.previous == []


async def test_a_punch_committed_while_the_person_is_read_is_kept(
    db: aiosqlite.Connection,
) -> None:
    """The first punch of a person reads their punches from the store; one committed by the
    writer meanwhile must not fall between the read and the listener, and another punch of
    theirs meanwhile is classified from the store rather than from half-read memory."""
    held = HeldReads(db, "records")
    recent = RecentPunches(held)  # type: ignore[arg-type]
    reading = asyncio.create_task(recent.context("p1", NOW, TODAY, ("term-1", "x")))
    await asyncio.sleep(0.05)
    recent.committed([punch("p1", "meanwhile", NOW - 1000)])
    other = await recent.context("p1", NOW + 500, TODAY, ("term-1", "z"))
    assert other.previous == []  # from the store, which never got "meanwhile"
    assert recent.store_reads == 1
    held.release.set()
    await reading
    after = await recent.context("p1", NOW + 1000, TODAY, ("term-1", "y"))
    assert after.previous == [NOW - 1000]
    assert recent.store_reads == 1


async def test_leave_changed_while_it_is_read_is_not_kept(db: aiosqlite.Connection) -> None:
    held = HeldReads(db, "leave_days")
    recent = RecentPunches(held)  # type: ignore[arg-type]
    reading = asyncio.create_task(recent.context("p2", NOW, TODAY, ("t", "a")))
    await asyncio.sleep(0.05)
    await upsert_leave(db, [LeaveDay("p2", TODAY, "annual")])
    recent.leave_changed()  # what the verifier does when it sees leave.version move
    held.release.set()
    first = await reading
    assert first.leave_days == {TODAY}  # answered by the store, not the stale read
    assert recent.store_reads == 1
    second = await recent.context("p2", NOW + 1000, TODAY, ("t", "b"))
    assert second.leave_days == {TODAY}
    assert recent.store_reads == 1


async def test_an_old_punch_is_classified_from_the_store(db: aiosqlite.Connection) -> None:
    """An outbox replayed days late: its window starts before what memory holds."""
    recent = RecentPunches(db)
    old = NOW - 5 * _DAY_MS
    async with RecordWriter(db, max_batch=10, max_pending=10, on_records=recent.committed) as w:
        await recent.context("p1", NOW, TODAY, ("term-1", "x"))
        await w.submit(punch("p1", "old", old))
    day = TODAY - dt.timedelta(days=5)
    context = await recent.context("p1", old + 60_000, day, ("term-1", "old-2"))
    assert context.previous == [old]
    assert recent.store_reads == 1


async def test_leave_pulled_by_the_bridge_is_seen_after_the_verifier_reloads(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    verifier = await AttendanceVerifier.open(db, settings)
    recent = verifier.recent
    assert (await recent.context("p2", NOW, TODAY, ("t", "a"))).leave_days == set()
    await upsert_leave(db, [LeaveDay("p2", TODAY, "annual"), LeaveDay("p1", TODAY, "sick")])
    await verifier.reload_if_changed()
    context = await recent.context("p2", NOW, TODAY, ("t", "b"))
    assert context.leave_days == {TODAY}
    # A day far from today is not held in memory: the store answers, with the same result.
    far = TODAY + dt.timedelta(days=30)
    await upsert_leave(db, [LeaveDay("p2", far, "annual")])
    far_context = await recent.context("p2", NOW + 30 * _DAY_MS, far, ("t", "c"))
    assert far_context.leave_days == {far}
    assert recent.store_reads == 1
    await verifier.close()


async def test_a_long_running_gateway_lets_old_days_go(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory holds a few days per person, however long the gateway runs."""
    recent = RecentPunches(db)
    await recent.context("p1", NOW, TODAY, ("t", "a"))
    recent.committed([punch("p1", f"m{n}", NOW - n * 3600_000) for n in range(48)])
    assert len((await recent.context("p1", NOW, TODAY, ("t", "b"))).previous) == 48
    later = NOW + 5 * _DAY_MS
    monkeypatch.setattr(recent_module, "_now_ms", lambda: later)
    context = await recent.context("p1", later, TODAY + dt.timedelta(days=5), ("t", "c"))
    assert context.previous == []
    assert recent._punches["p1"] == {}  # the 48 old punches are gone from memory
    assert recent.store_reads == 0
