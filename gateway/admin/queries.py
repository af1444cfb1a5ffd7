"""Read-side queries of the admin app: devices with presence, records by filter and page, the
dashboard's numbers. Straight SQL over the store, so they work with or without a gateway."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from gateway.store.devices import get_device, list_devices, list_presence


@dataclass(frozen=True, slots=True)
class DeviceView:
    device_id: str
    device_type: str
    name: str
    room_id: str | None
    revoked: bool
    online: bool
    boot: int | None
    firmware: str | None
    presence_changed_ts_ms: int | None

    @property
    def state(self) -> str:
        return "revoked" if self.revoked else "online" if self.online else "offline"

    def as_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "type": self.device_type,
            "name": self.name,
            "room_id": self.room_id,
            "state": self.state,
            "revoked": self.revoked,
            "online": self.online,
            "boot": self.boot,
            "firmware": self.firmware,
            "presence_changed_ts_ms": self.presence_changed_ts_ms,
        }


async def devices(db: aiosqlite.Connection, search: str = "", state: str = "") -> list[DeviceView]:
    """Devices whose id, name or room contain ``search`` (any case), in ``state`` if given."""
    presence = {p.device_id: p for p in await list_presence(db)}
    out = []
    needle = search.strip().lower()
    for d in await list_devices(db):
        p = presence.get(d.device_id)
        view = DeviceView(
            d.device_id,
            str(d.device_type),
            d.name,
            d.room_id,
            d.revoked,
            bool(p and p.online and not d.revoked),
            p.boot if p else None,
            p.firmware if p else None,
            p.changed_ts_ms if p else None,
        )
        text = f"{d.device_id} {d.name} {d.room_id or ''}".lower()
        if needle and needle not in text:
            continue
        if state and view.state != state:
            continue
        out.append(view)
    return out


async def device(db: aiosqlite.Connection, device_id: str) -> DeviceView | None:
    d = await get_device(db, device_id)
    if d is None:
        return None
    found = [v for v in await devices(db) if v.device_id == device_id]
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class RecordFilter:
    device: str = ""
    person: str = ""
    kind: str = ""
    status: str = ""
    sync: str = ""
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("r.device_id", self.device),
            ("r.person_id", self.person),
            ("r.kind", self.kind),
            ("r.status", self.status),
            ("r.sync_state", self.sync),
        ):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since_ms is not None:
            clauses.append("r.device_ts_ms >= ?")
            args.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append("r.device_ts_ms < ?")
            args.append(self.until_ms)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


_RECORD_SQL = (
    "SELECT r.id, r.device_id, r.seq, r.msg_id, r.kind, r.device_ts_ms, r.received_ts_ms,"
    " r.person_id, p.name, r.status, r.reason, r.sync_state, r.sync_error,"
    " f.device_id IS NOT NULL"
    " FROM records r LEFT JOIN people p ON p.person_id = r.person_id"
    " LEFT JOIN frames f ON f.device_id = r.device_id AND f.msg_id = r.msg_id"
)
RECORD_COLUMNS = (
    "id",
    "device_id",
    "seq",
    "msg_id",
    "kind",
    "device_ts_ms",
    "received_ts_ms",
    "person_id",
    "person_name",
    "status",
    "reason",
    "sync_state",
    "sync_error",
    "has_frame",
)


def _record(row: Any) -> dict[str, Any]:
    item = dict(zip(RECORD_COLUMNS, row, strict=True))
    item["has_frame"] = bool(item["has_frame"])
    return item


async def records(
    db: aiosqlite.Connection, flt: RecordFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of records, newest first, and how many match in all. No card numbers: the
    credential column is never read here."""
    where, args = flt.where()
    async with db.execute(f"SELECT count(*) FROM records r{where}", args) as cur:
        total = int((await cur.fetchone() or (0,))[0])
    async with db.execute(
        f"{_RECORD_SQL}{where} ORDER BY r.id DESC LIMIT ? OFFSET ?", (*args, limit, offset)
    ) as cur:
        rows = [_record(r) for r in await cur.fetchall()]
    return rows, total


async def iter_records(
    db: aiosqlite.Connection, flt: RecordFilter
) -> AsyncIterator[dict[str, Any]]:
    """Every matching record, oldest first, read a page at a time for the CSV export."""
    where, args = flt.where()
    last = 0
    joiner = " AND " if where else " WHERE "
    while True:
        async with db.execute(
            f"{_RECORD_SQL}{where}{joiner}r.id > ? ORDER BY r.id LIMIT 1000", (*args, last)
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        for row in rows:
            yield _record(row)
        last = int(rows[-1][0])


async def record_frame_key(db: aiosqlite.Connection, record_id: int) -> tuple[str, str] | None:
    async with db.execute(
        "SELECT device_id, msg_id FROM records WHERE id = ?", (record_id,)
    ) as cur:
        row = await cur.fetchone()
    return (str(row[0]), str(row[1])) if row else None


def day_bounds(zone: ZoneInfo, now_ms: int) -> tuple[int, int]:
    """UTC ms of the start and end of the site's local day containing ``now_ms``."""
    local = dt.datetime.fromtimestamp(now_ms / 1000, zone)
    start = dt.datetime.combine(local.date(), dt.time(0), zone)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def store_bytes(db_path: Path) -> int:
    """The store's size on disk: the file and its write-ahead log."""
    total = 0
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(path).st_size
    return total


@dataclass(frozen=True, slots=True)
class Dashboard:
    devices_total: int
    devices_online: int
    offline: list[str]
    punches_today: int
    pending: int
    dead_letters: int
    bridge_lag_s: float


async def dashboard(db: aiosqlite.Connection, zone: ZoneInfo, now_ms: int) -> Dashboard:
    from gateway.store.records import sync_stats

    views = await devices(db)
    start, end = day_bounds(zone, now_ms)
    async with db.execute(
        "SELECT count(*) FROM records WHERE kind = 'punch' AND device_ts_ms >= ?"
        " AND device_ts_ms < ?",
        (start, end),
    ) as cur:
        today = int((await cur.fetchone() or (0,))[0])
    stats = await sync_stats(db)
    return Dashboard(
        devices_total=len(views),
        devices_online=sum(v.online for v in views),
        offline=[v.device_id for v in views if v.state == "offline"],
        punches_today=today,
        pending=stats.pending,
        dead_letters=stats.by_state.get("failed", 0),
        bridge_lag_s=stats.lag_s(now_ms),
    )
