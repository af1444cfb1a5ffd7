"""Bookings from CalDAV, through a real Radicale server (tests/fixtures/radicale.py), seeded
with events by the caldav client."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import RoomsSettings
from gateway.rooms import caldav_source
from gateway.rooms.store import views_between
from tests.fixtures.radicale import (
    free_port,
    radicale_fixture,  # noqa: F401 (the fixture `radicale`)
)
from tests.rooms.conftest import Site
from tests.rooms.support import BERLIN, MIN, local

WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Tack tests//EN
BEGIN:VEVENT
UID:weekly-standup
DTSTAMP:20260301T000000Z
DTSTART;TZID=Europe/Berlin:20260323T100000
DTEND;TZID=Europe/Berlin:20260323T103000
RRULE:FREQ=WEEKLY;COUNT=3
SUMMARY:Stand-up
END:VEVENT
END:VCALENDAR
"""

FLOATING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Tack tests//EN
BEGIN:VEVENT
UID:floating-review
DTSTAMP:20260301T000000Z
DTSTART:20260330T140000
DTEND:20260330T150000
SUMMARY:Review
END:VEVENT
END:VCALENDAR
"""


def _seed(base: str) -> None:
    from caldav.davclient import DAVClient

    client = DAVClient(url=base)
    client.mkcol(base + "tack/", "")
    client.mkcalendar(base + "tack/r-101/", "")
    calendar = client.calendar(url=base + "tack/r-101/")  # type: ignore[no-untyped-call]
    calendar.save_event(WEEKLY)
    calendar.save_event(FLOATING)


def _delete(base: str, uid: str) -> None:
    from caldav.davclient import DAVClient

    calendar = DAVClient(url=base).calendar(url=base + "tack/r-101/")  # type: ignore[no-untyped-call]
    calendar.event_by_uid(uid).delete()


async def test_recurring_and_floating_events_become_bookings_in_the_site_zone(
    site_rooms: Site, radicale: str
) -> None:
    await asyncio.to_thread(_seed, radicale)
    settings = RoomsSettings(caldav_url=radicale, room=[{"id": "r-101", "calendar": "tack/r-101/"}])
    cfg = caldav_source.config_of(settings)
    assert cfg is not None
    s = site_rooms
    s.clock.set(local(2026, 3, 22, 12))
    horizon = 10 * 24 * 60 * MIN
    await caldav_source.pull(s.db, cfg, BERLIN, s.clock(), horizon)

    views = await views_between(s.db, "r-101", local(2026, 3, 20, 0), local(2026, 4, 10, 0))
    got = [(v.subject, v.start_ms, v.end_ms - v.start_ms, v.source) for v in views]
    assert got == [
        ("Stand-up", local(2026, 3, 23, 10), 30 * MIN, "caldav"),
        # The week after the DST change: still 10:00 on the wall, one hour earlier in UTC.
        ("Stand-up", local(2026, 3, 30, 10), 30 * MIN, "caldav"),
        ("Review", local(2026, 3, 30, 14), 60 * MIN, "caldav"),  # floating: site time
    ]
    assert local(2026, 3, 30, 10) - local(2026, 3, 23, 10) == 7 * 24 * 60 * MIN - 60 * MIN

    # The panel shows them like any booking.
    s.clock.set(local(2026, 3, 23, 9, 57))
    await s.service.tick()
    assert [(i.title, i.state) for i in s.panel.schedule.items][:1] == [("Stand-up", "open")]

    # An event deleted at the calendar frees its slots at the next pull.
    await asyncio.to_thread(_delete, radicale, "floating-review")
    await caldav_source.pull(s.db, cfg, BERLIN, s.clock(), horizon)
    views = await views_between(s.db, "r-101", local(2026, 3, 30, 0), local(2026, 3, 31, 0))
    assert [(v.subject, v.status) for v in views] == [
        ("Stand-up", "confirmed"),
        ("Review", "cancelled"),
    ]


async def test_an_unreachable_calendar_names_the_room(site_rooms: Site) -> None:
    cfg = caldav_source.CalDavConfig(f"http://127.0.0.1:{free_port()}/", {"r-101": "x/"})
    with pytest.raises(caldav_source.CalDavError, match="room r-101"):
        await caldav_source.pull(site_rooms.db, cfg, BERLIN, site_rooms.clock(), MIN)
