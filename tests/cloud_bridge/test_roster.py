"""The roster is pulled page by page into the store, departures included."""

from __future__ import annotations

from pathlib import Path

from cloud_bridge.runner import ROSTER_CURSOR_KEY, ROSTER_PULLED_KEY, Bridge
from gateway.store.database import open_database
from gateway.store.roster import get_value, set_value
from simulators.backend import BackendServer, demo_roster
from tests.cloud_bridge.helpers import (
    all_synced,
    bridge_settings,
    eventually,
    insert_records,
    people,
)

ROSTER_SIZE = 250  # three pages of at most 100


async def test_roster_pull_follows_every_page(backend: BackendServer, tmp_path: Path) -> None:
    roster = demo_roster(ROSTER_SIZE)
    roster[-1]["active"] = False  # left the company, still listed
    backend.state.set_roster(roster)
    settings = bridge_settings(tmp_path, backend.base_url)

    async with Bridge(settings) as bridge:

        async def pulled() -> bool:
            return bridge.counters.roster_pulls >= 1

        await eventually(pulled, "a full roster pass")

    local = await people(settings.db_path)
    assert len(local) == ROSTER_SIZE
    assert backend.state.snapshot()["calls"]["user_list"] == 3
    first = local["u0001"]
    assert (first.name, first.card, first.employee_no, first.department, first.active) == (
        "Person 0001",
        "C0001",
        "E0001",
        "Engineering",
        True,
    )
    assert local["u0250"].active is False
    db = await open_database(settings.db_path)
    try:
        assert await get_value(db, ROSTER_CURSOR_KEY) == ""
        assert await get_value(db, ROSTER_PULLED_KEY)
    finally:
        await db.close()


async def test_person_who_leaves_becomes_inactive_locally(
    backend: BackendServer, tmp_path: Path
) -> None:
    roster = demo_roster(120)
    backend.state.set_roster(roster)
    settings = bridge_settings(tmp_path, backend.base_url, roster_interval_s=0.1)

    async with Bridge(settings):

        async def all_there() -> bool:
            return len(await people(settings.db_path)) == 120

        await eventually(all_there, "the first pull")
        assert (await people(settings.db_path))["u0042"].active is True
        roster[41]["active"] = False
        backend.state.set_roster(roster)

        async def left() -> bool:
            return (await people(settings.db_path))["u0042"].active is False

        await eventually(left, "u0042 marked inactive")


async def test_interrupted_pass_resumes_from_its_cursor(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_roster(demo_roster(150))
    settings = bridge_settings(tmp_path, backend.base_url)
    db = await open_database(settings.db_path)
    try:
        await set_value(db, ROSTER_CURSOR_KEY, "u0100")  # as if a restart cut the pass short
    finally:
        await db.close()

    async with Bridge(settings) as bridge:

        async def pulled() -> bool:
            return bridge.counters.roster_pulls >= 1

        await eventually(pulled, "the pass finished")
        assert bridge.counters.people_pulled == 50  # only the pages after the cursor
    assert len(await people(settings.db_path)) == 50


async def test_roster_pulls_and_uploads_share_the_store_safely(
    backend: BackendServer, tmp_path: Path
) -> None:
    """Both loops write through one connection; their transactions must never interleave."""
    backend.state.set_roster(demo_roster(ROSTER_SIZE))
    settings = bridge_settings(tmp_path, backend.base_url, roster_interval_s=0.01, batch_size=5)
    keys = await insert_records(settings.db_path, [f"u{i % 20 + 1:04d}" for i in range(150)])

    async with Bridge(settings) as bridge:
        await eventually(lambda: all_synced(settings.db_path, keys), "all records synced")
        stats = await bridge.stats()

    assert stats.counters.store_errors == 0, stats.counters.last_error
    assert stats.counters.roster_pulls >= 2
    assert stats.counters.uploaded == 150
