"""Down-sync beyond the roster: geofences, shifts, rooms and bookings, leave balances, the
incremental roster, and configuration kept apart from synced data.

Real parts throughout: the backend simulator over HTTP, a real SQLite store, the real bridge.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cloud_bridge.downsync import BOOKINGS_SINCE_KEY
from cloud_bridge.runner import Bridge
from gateway.attendance.balances import leave_balance
from gateway.attendance.policy import Policy, PunchStatus
from gateway.attendance.store import classify_punch
from gateway.config import TackSettings, load_settings
from gateway.store.database import open_database
from gateway.store.rooms import bookings_between, load_rooms
from gateway.store.roster import Person, get_value
from gateway.verify.geo.fence import Circle
from gateway.verify.geo.store import fence_sources, load_fences, replace_fences
from simulators.backend import BackendServer, Faults, demo_roster
from tests.cloud_bridge.helpers import (
    bridge_settings,
    eventually,
    insert_records,
    people,
    sync_states,
)

SH = ZoneInfo("Asia/Shanghai")
WEDNESDAY = dt.date(2026, 11, 25)
HOUR_MS = 3_600_000


def fast(tmp_path: Path, base_url: str, **bridge: Any) -> TackSettings:
    return bridge_settings(tmp_path, base_url, **{"roster_interval_s": 0.1, **bridge})


async def passes(bridge: Bridge, n: int) -> None:
    """Wait for ``n`` more roster passes and the pulls after them."""
    start = bridge.counters.roster_pulls

    async def done() -> bool:
        return bridge.counters.roster_pulls >= start + n + 1  # +1: the pulls after the nth ran

    await eventually(done, f"{n} more roster passes")


def group(
    group_id: int, positions: list[dict[str, Any]], classes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "group_name": f"group {group_id}",
        "dept_name_list": [],
        "work_day_list": [1, 2, 3, 4, 5],
        "classes": classes or [],
        "positions": positions,
    }


def position(title: str, lat: float, lon: float, radius_m: int = 200) -> dict[str, Any]:
    return {
        "position_id": f"p-{title}",
        "title": title,
        "latitude": lat,
        "longitude": lon,
        "offset": radius_m,
    }


async def test_pulled_geofences_replace_only_the_backends_own(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = fast(tmp_path, backend.base_url)
    db = await open_database(settings.db_path)
    try:  # loaded by hand with `tack geofences`, before the bridge ever ran
        await replace_fences(
            db,
            settings.site,
            [Circle("lobby", 31.0, 121.0, 50.0), Circle("hq", 31.5, 121.5, 80.0)],
        )
    finally:
        await db.close()
    backend.state.directory.set_groups(
        [group(1, [position("hq", 30.0, 120.0), position("plant", 30.1, 120.1, 500)])]
    )

    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        first = await _fences(settings)
        backend.state.directory.set_groups([group(1, [position("annex", 30.2, 120.2)])])
        await passes(bridge, 1)
        second = await _fences(settings)

    # The local "hq" wins over the backend's fence of the same name; "plant" came from the
    # backend; nothing local was touched.
    assert first == {
        "hq": ("local", (31.5, 121.5, 80.0)),
        "lobby": ("local", (31.0, 121.0, 50.0)),
        "plant": ("backend", (30.1, 120.1, 500.0)),
    }
    # The backend dropped "plant" and added "annex": the pull follows; local fences stay.
    assert second == {
        "annex": ("backend", (30.2, 120.2, 200.0)),
        "hq": ("local", (31.5, 121.5, 80.0)),
        "lobby": ("local", (31.0, 121.0, 50.0)),
    }

    db = await open_database(settings.db_path)
    try:  # `tack geofences load` again: it replaces the local fences, not the backend's
        await replace_fences(db, settings.site, [Circle("gate", 31.1, 121.1, 30.0)])
    finally:
        await db.close()
    assert await _fences(settings) == {
        "annex": ("backend", (30.2, 120.2, 200.0)),
        "gate": ("local", (31.1, 121.1, 30.0)),
    }


async def _fences(settings: TackSettings) -> dict[str, tuple[str, tuple[float, float, float]]]:
    db = await open_database(settings.db_path)
    try:
        fences = await load_fences(db, settings.site)
        sources = await fence_sources(db, settings.site)
    finally:
        await db.close()
    out = {}
    for f in fences:
        assert isinstance(f, Circle)
        out[f.name] = (sources[f.name], (f.lat, f.lon, f.radius_m))
    return out


def at(hour: int, minute: int = 0) -> int:
    return int(dt.datetime.combine(WEDNESDAY, dt.time(hour, minute), SH).timestamp() * 1000)


async def test_backend_shifts_override_the_config_and_the_config_is_the_fallback(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = fast(tmp_path, backend.base_url)  # config: 09:00-18:00, 5 min grace
    policy = Policy.from_settings(settings.attendance)
    alice = Person("u0001", "Person 0001")
    late_start = {
        "class_id": 7,
        "class_name": "late start",
        "on_duty": "10:00",
        "off_duty": "19:00",
        "permit_late_minutes": 15,
    }
    backend.state.directory.set_groups([group(1, [], [late_start])])

    async def classify(ts_ms: int) -> tuple[PunchStatus, str | None]:
        db = await open_database(settings.db_path)
        try:
            c = await classify_punch(db, policy, alice, ts_ms)
        finally:
            await db.close()
        return c.status, c.shift

    # No pull yet: the config's shift; 09:40 is 40 minutes late.
    assert await classify(at(9, 40)) == (PunchStatus.LATE, "day")
    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        assert bridge.counters.shifts == 1
        # The backend's shift starts at 10:00: 09:40 is on time, 10:10 within its grace.
        assert await classify(at(9, 40)) == (PunchStatus.ON_TIME, "late start")
        assert await classify(at(10, 10)) == (PunchStatus.ON_TIME, "late start")
        backend.state.directory.set_groups([])  # the backend drops its shift rules
        await passes(bridge, 1)
    assert await classify(at(9, 40)) == (PunchStatus.LATE, "day")


async def test_rooms_and_bookings_are_pulled_incrementally(
    backend: BackendServer, tmp_path: Path
) -> None:
    directory = backend.state.directory
    directory.set_rooms(
        [
            {"room_id": "r1", "room_name": "Lotus", "room_capacity": 8, "room_location": "3F"},
            {"room_id": "r2", "room_name": "Bamboo", "room_capacity": 4, "room_status": 0},
        ]
    )
    base = at(9)
    for i in range(50):  # half-hour slots over two rooms
        directory.put_booking(
            f"b{i:03d}",
            f"r{i % 2 + 1}",
            base + i * HOUR_MS // 2,
            base + (i + 1) * HOUR_MS // 2,
            subject=f"meeting {i}",
            organizer="u0001",
            attendees=["u0002", "u0003"],
        )
    settings = fast(tmp_path, backend.base_url)

    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        first_pull = bridge.counters.bookings_pulled
        directory.put_booking("b000", "r1", at(16), at(17), subject="moved", organizer="u0004")
        directory.cancel_booking("b002")
        directory.put_booking("b100", "r2", at(7), at(8), subject="new")
        await passes(bridge, 1)
        second_pull = bridge.counters.bookings_pulled - first_pull

    assert first_pull == 50
    assert second_pull == 3  # only what changed, not the other 47 bookings
    db = await open_database(settings.db_path)
    try:
        rooms = await load_rooms(db)
        r1 = await bookings_between(db, "r1", at(0), at(23))
        r1_all = await bookings_between(db, "r1", at(0), at(23), include_cancelled=True)
        r2 = await bookings_between(db, "r2", at(7), at(8))
        since = await get_value(db, BOOKINGS_SINCE_KEY)
    finally:
        await db.close()
    assert [(r.room_id, r.name, r.capacity, r.location, r.active) for r in rooms] == [
        ("r1", "Lotus", 8, "3F", True),
        ("r2", "Bamboo", 4, "", False),
    ]
    moved = next(b for b in r1 if b.booking_id == "b000")
    assert (moved.start_ms, moved.end_ms, moved.subject, moved.organizer) == (
        at(16),
        at(17),
        "moved",
        "u0004",
    )
    assert "b002" not in {b.booking_id for b in r1}  # cancelled: the slot is free
    assert next(b for b in r1_all if b.booking_id == "b002").status == "cancelled"
    assert next(b for b in r1 if b.booking_id == "b004").attendees == ("u0002", "u0003")
    assert [b.booking_id for b in r2] == ["b100"]
    assert since is not None
    assert int(since) > 0


async def test_leave_balances_are_kept_per_person_and_dropped_when_they_leave(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.directory.set_quotas(
        [
            {"userid": "u0001", "leave_code": "annual", "unit": "day", "quota": 10, "used": 2.5},
            {"userid": "u0001", "leave_code": "sick", "unit": "hour", "quota": 16, "used": 4},
            {"userid": "u0002", "leave_code": "annual", "unit": "day", "quota": 5, "used": 0},
        ]
    )
    settings = fast(tmp_path, backend.base_url)
    roster = demo_roster(20)
    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        balances = await _balances(settings, "u0001", "u0002", "u0003")
        roster[1]["active"] = False  # u0002 leaves
        backend.state.set_roster(roster)
        await passes(bridge, 1)
        after = await _balances(settings, "u0002")
    assert balances == {
        "u0001": [("annual", 7.5, "day"), ("sick", 12.0, "hour")],
        "u0002": [("annual", 5.0, "day")],
        "u0003": [],
    }
    assert after == {"u0002": []}


async def _balances(settings: TackSettings, *ids: str) -> dict[str, list[tuple[str, float, str]]]:
    db = await open_database(settings.db_path)
    try:
        return {p: await leave_balance(db, p) for p in ids}
    finally:
        await db.close()


async def test_roster_passes_ask_for_changes_and_a_full_pass_catches_removals(
    backend: BackendServer, tmp_path: Path
) -> None:
    roster = demo_roster(250)
    backend.state.set_roster(roster)
    settings = fast(tmp_path, backend.base_url, roster_full_every=3)
    async with Bridge(settings) as bridge:
        await eventually(_counter(bridge, "roster_pulls", 1), "the first, full pass")
        assert bridge.counters.people_pulled == 250
        pulled = bridge.counters.people_pulled
        roster[9]["name"] = "Renamed"  # u0010 changes
        del roster[19]  # u0020 is removed outright: no longer listed at all
        backend.state.set_roster(roster)

        async def renamed() -> bool:
            return (await people(settings.db_path))["u0010"].name == "Renamed"

        await eventually(renamed, "the change pulled")
        assert bridge.counters.roster_changes_pulls >= 1
        # Passes that ask for changes read the one change, not the 250 people again (a full
        # pass every third would; the change was read before one came round).
        assert bridge.counters.people_pulled - pulled < 10
        assert (await people(settings.db_path))["u0020"].active is True  # invisible to changes
        await eventually(_counter(bridge, "people_departed", 1), "a full pass noticing u0020")
    local = await people(settings.db_path)
    assert local["u0020"].active is False
    assert sum(p.active for p in local.values()) == 249


async def test_a_backend_that_suddenly_lists_nobody_makes_nobody_inactive(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = fast(tmp_path, backend.base_url, roster_full_every=1)
    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        backend.state.set_roster([])  # a wrong tenant, an empty test backend, a bad export
        await passes(bridge, 2)
        assert bridge.counters.last_error is not None
        assert "listed nobody" in bridge.counters.last_error
    local = await people(settings.db_path)
    assert len(local) == 20
    assert all(p.active for p in local.values())


async def test_a_pull_that_keeps_failing_stops_neither_the_roster_nor_the_other_pulls(
    backend: BackendServer, tmp_path: Path
) -> None:
    """The app may not use the room API (the backend answers an errcode every time): shifts
    and fences still arrive, and roster changes keep coming in."""
    directory = backend.state.directory
    directory.deny("rooms", 60011)
    bad_class = {"class_id": 2, "class_name": "broken", "on_duty": "9am", "off_duty": "18:00"}
    good_class = {"class_id": 1, "class_name": "day", "on_duty": "09:00", "off_duty": "18:00"}
    directory.set_groups(
        [
            group(
                1,
                [position("hq", 30.0, 120.0), position("nowhere", 95.0, 120.0)],
                [good_class, bad_class],
            )
        ]
    )
    roster = demo_roster(20)
    settings = fast(tmp_path, backend.base_url, roster_interval_s=0.3)
    async with Bridge(settings) as bridge:

        async def pulled() -> bool:
            return bridge.counters.shifts == 1 and bridge.counters.geofences == 1

        await eventually(pulled, "the usable shift and fence pulled")
        roster[4]["card"] = "NEW-CARD"
        backend.state.set_roster(roster)

        async def new_card() -> bool:
            return (await people(settings.db_path))["u0005"].card == "NEW-CARD"

        await eventually(new_card, "a roster change while the room pull keeps failing")
        assert bridge.counters.last_error is not None
        assert "60011" in bridge.counters.last_error
    assert backend.state.directory.snapshot()["calls"]["rooms"] >= 2  # it was retried


def _counter(bridge: Bridge, name: str, at_least: int) -> Any:
    async def check() -> bool:
        return int(getattr(bridge.counters, name)) >= at_least

    return check


async def test_a_config_change_never_deletes_buffered_records_or_pulled_data(
    backend: BackendServer, tmp_path: Path
) -> None:
    """Pull everything, buffer records, then run the bridge under a changed configuration (a
    different base URL that does not answer, other shifts): nothing is lost; back on the
    right URL the records go up."""
    directory = backend.state.directory
    directory.set_groups(
        [
            group(
                1,
                [position("hq", 30.0, 120.0)],
                [{"class_id": 1, "class_name": "early", "on_duty": "07:00", "off_duty": "16:00"}],
            )
        ]
    )
    directory.set_rooms([{"room_id": "r1", "room_name": "Lotus"}])
    directory.put_booking("b1", "r1", at(9), at(10))
    directory.set_quotas(
        [{"userid": "u0001", "leave_code": "annual", "unit": "day", "quota": 3, "used": 1}]
    )
    settings = fast(tmp_path, backend.base_url, roster_full_every=1)
    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
    before = _snapshot(settings.db_path)
    backend.state.set_faults(Faults(fail_status=10_000))  # uploads fail: records stay buffered
    keys = await insert_records(settings.db_path, ["u0001", "u0002", "u0003"])
    assert {s for s, _ in (await sync_states(settings.db_path)).values()} == {"pending"}

    changed = load_settings(
        None,
        data_dir=tmp_path,
        bridge={
            **settings.bridge.model_dump(),
            "base_url": "http://127.0.0.1:9",  # nothing listens on the discard port
            "backoff_max_s": 1.0,
        },
        attendance={"shifts": [{"name": "night", "start": "22:00", "end": "06:00"}]},
    )
    async with Bridge(changed) as bridge:

        async def failing() -> bool:
            return bridge.counters.last_error is not None

        await eventually(failing, "the unreachable backend noticed")
    after = _snapshot(changed.db_path)
    assert after == before
    states = await sync_states(settings.db_path)
    assert [states[k][0] for k in keys] == ["pending"] * 3

    backend.state.set_faults(Faults())
    async with Bridge(settings) as bridge:

        async def uploaded() -> bool:
            states = await sync_states(settings.db_path)
            return all(states[k][0] == "synced" for k in keys)

        await eventually(uploaded, "the buffered records uploaded")
    assert _snapshot(settings.db_path) == before


def _snapshot(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What was pulled, without the timestamps of when."""
    queries = {
        "people": "SELECT person_id, name, card, active FROM people ORDER BY person_id",
        "geofences": "SELECT name, kind, spec, source FROM geofences ORDER BY name",
        "shifts": "SELECT shift_id, name, start_hhmm, end_hhmm FROM shifts ORDER BY shift_id",
        "rooms": "SELECT room_id, name FROM rooms ORDER BY room_id",
        "bookings": "SELECT booking_id, room_id, start_ms, status FROM bookings",
        "balances": "SELECT person_id, kind, remaining, unit FROM leave_balances",
    }
    with sqlite3.connect(db_path) as db:
        out = {name: db.execute(sql).fetchall() for name, sql in queries.items()}
    assert all(out.values()), f"something was not pulled: {out}"
    return out
