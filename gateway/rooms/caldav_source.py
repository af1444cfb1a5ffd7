"""Bookings from CalDAV calendars, one calendar per room (``rooms.caldav_url`` and each
``[[rooms.room]]``'s ``calendar`` path), beside the ones the bridge pulls from the backend.

Recurring events are expanded by the server query (``expand=True``; caldav falls back to
expanding on the client with ``recurring-ical-events``), over the same window a panel shows.
Times with a zone keep it; floating times and all-day events are read in the site's time zone.
Each occurrence becomes a booking with ``source = 'caldav'`` and an id derived from the
calendar, the event's UID and the occurrence's start, so a re-read finds the same rows; an
occurrence that is no longer listed in the window is marked cancelled (that is how a deleted or
moved event frees its slot). The caldav client is synchronous: it runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import aiosqlite

from devices.protocol.errors import TackError
from gateway.config import RoomsSettings
from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.rooms import CANCELLED, CONFIRMED, ROOMS_VERSION_KEY, Booking
from gateway.store.roster import bump_version

log = logging.getLogger(__name__)

SOURCE = "caldav"
PULL_EVERY_S = 60.0  # calendars change by hand; a minute is soon enough for a panel
LOOKBACK_MS = 24 * 3600 * 1000  # occurrences that started up to a day ago may still run


class CalDavError(TackError):
    """The CalDAV server could not be read; the message names the room and the calendar."""


@dataclass(frozen=True, slots=True)
class CalDavConfig:
    url: str
    calendars: Mapping[str, str]  # room id -> calendar path (relative to url) or URL
    username: str = ""
    password: str = ""


def read_bookings(
    cfg: CalDavConfig, zone: ZoneInfo, start_ms: int, end_ms: int
) -> dict[str, list[Booking]]:
    """Every occurrence in ``[start_ms, end_ms)``, by room. Blocking: call it in a thread."""
    from caldav.davclient import DAVClient  # a heavy import: only for sites using CalDAV

    start = dt.datetime.fromtimestamp(start_ms / 1000, tz=zone)
    end = dt.datetime.fromtimestamp(end_ms / 1000, tz=zone)
    client = DAVClient(url=cfg.url, username=cfg.username or None, password=cfg.password or None)
    out: dict[str, list[Booking]] = {}
    for room_id, path in cfg.calendars.items():
        where = urljoin(cfg.url if cfg.url.endswith("/") else cfg.url + "/", path)
        try:
            calendar = client.calendar(url=where)  # type: ignore[no-untyped-call]
            events = calendar.search(start=start, end=end, event=True, expand=True)
        except Exception as exc:  # caldav, niquests and lxml errors share no base class
            raise CalDavError(f"reading the calendar of room {room_id} at {where}: {exc}") from exc
        found = (_booking(room_id, where, e.icalendar_component, zone) for e in events)
        out[room_id] = [b for b in found if b is not None]
    return out


def _instant(value: object, zone: ZoneInfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):  # all day: from local midnight
        return dt.datetime.combine(value, dt.time(0), tzinfo=zone)
    return None


def _booking(room_id: str, calendar: str, comp: Any, zone: ZoneInfo) -> Booking | None:
    start = _instant(comp.get("dtstart").dt if comp.get("dtstart") else None, zone)
    if start is None:
        return None
    if comp.get("dtend") is not None:
        end = _instant(comp.get("dtend").dt, zone)
    elif comp.get("duration") is not None:
        end = start + comp.get("duration").dt
    else:
        end = (
            start + dt.timedelta(days=1)
            if not isinstance(comp.get("dtstart").dt, dt.datetime)
            else None
        )
    if end is None or end <= start:
        return None
    uid = str(comp.get("uid", ""))
    key = f"{calendar}|{uid}|{int(start.timestamp())}"
    modified = comp.get("last-modified")
    status = str(comp.get("status", "")).upper()
    return Booking(
        booking_id="cd-" + hashlib.sha256(key.encode()).hexdigest()[:24],
        room_id=room_id,
        start_ms=int(start.timestamp() * 1000),
        end_ms=int(end.timestamp() * 1000),
        subject=str(comp.get("summary", ""))[:64],
        status=CANCELLED if status == "CANCELLED" else CONFIRMED,
        updated_ts=int(modified.dt.timestamp() * 1000) if modified is not None else 0,
    )


async def save(
    db: aiosqlite.Connection, found: Mapping[str, list[Booking]], start_ms: int, end_ms: int
) -> int:
    """Upsert what was read (``source = 'caldav'``) and cancel this source's occurrences of the
    same rooms and window that were not; returns how many rows were written."""
    ts = now_ms()
    rows = [
        (
            b.booking_id,
            b.room_id,
            b.start_ms,
            b.end_ms,
            b.subject,
            "",
            json.dumps([]),
            b.status,
            b.updated_ts,
            ts,
            SOURCE,
        )
        for bookings in found.values()
        for b in bookings
    ]
    async with write_transaction(db, "saving CalDAV bookings"):
        await db.executemany(
            "INSERT INTO bookings (booking_id, room_id, start_ms, end_ms, subject, organizer,"
            " attendees, status, updated_ts, pulled_ts_ms, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (booking_id) DO UPDATE SET"
            " start_ms = excluded.start_ms, end_ms = excluded.end_ms,"
            " subject = excluded.subject, status = excluded.status,"
            " updated_ts = excluded.updated_ts, pulled_ts_ms = excluded.pulled_ts_ms",
            rows,
        )
        for room_id, bookings in found.items():
            seen = [b.booking_id for b in bookings]
            marks = ",".join("?" * len(seen)) or "''"
            await db.execute(
                f"UPDATE bookings SET status = ?, pulled_ts_ms = ? WHERE source = ?"
                f" AND room_id = ? AND start_ms < ? AND end_ms > ? AND status = ?"
                f" AND booking_id NOT IN ({marks})",
                (CANCELLED, ts, SOURCE, room_id, end_ms, start_ms, CONFIRMED, *seen),
            )
        await bump_version(db, ROOMS_VERSION_KEY)
    return len(rows)


async def pull(
    db: aiosqlite.Connection, cfg: CalDavConfig, zone: ZoneInfo, now: int, horizon_ms: int
) -> int:
    """One pass over every room's calendar: read (in a thread), then save."""
    start, end = now - LOOKBACK_MS, now + horizon_ms
    found = await asyncio.to_thread(read_bookings, cfg, zone, start, end)
    written = await save(db, found, start, end)
    log.info("CalDAV: %d occurrences in %d calendars", written, len(found))
    return written


def config_of(settings: RoomsSettings) -> CalDavConfig | None:
    """The CalDAV source the settings describe, or ``None`` when there is none."""
    calendars = {r.id: r.calendar for r in settings.room if r.calendar}
    if not settings.caldav_url or not calendars:
        return None
    return CalDavConfig(
        settings.caldav_url, calendars, settings.caldav_username, settings.caldav_password
    )
