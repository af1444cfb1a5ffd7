"""Enrolment photos become face templates once per change, and approved leave reaches the policy.

Real parts throughout: the backend simulator over HTTP, the project's own photos
(tests/data/faces), dlib's encoder, a real key file and SQLite store.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import numpy.typing as npt

from cloud_bridge.runner import LEAVE_PULLED_KEY, PHOTO_KEY_PREFIX, Bridge
from gateway.attendance.leave import leave_between
from gateway.attendance.policy import Policy
from gateway.attendance.store import classify_punch
from gateway.config import TackSettings
from gateway.store.database import open_database
from gateway.store.roster import Person, get_value
from simulators.backend import BackendServer, Faults
from tests.cloud_bridge.helpers import bridge_settings, eventually

FACES = Path(__file__).parents[1] / "data" / "faces"
PUTIN_1 = (FACES / "vladimir_putin/Vladimir_Putin_0001.jpg").read_bytes()
PUTIN_2 = (FACES / "vladimir_putin/Vladimir_Putin_0002.jpg").read_bytes()
CHIRAC = (FACES / "jacques_chirac/Jacques_Chirac_0002.jpg").read_bytes()
DAY_MS = 86_400_000


def no_face_jpeg() -> bytes:
    """A bright, sharp picture with no face in it: a chequerboard."""
    tiles = np.indices((8, 8)).sum(axis=0) % 2
    img = np.kron(tiles, np.ones((40, 40))).astype(np.uint8) * 200 + 30
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    assert ok
    return bytes(buf.tobytes())


def face_settings(tmp_path: Path, base_url: str, *, enabled: bool = True) -> TackSettings:
    """Fast roster passes, ``face.enabled`` as asked, and a real key file. The face tests need
    the ``face`` extra (``make install``); the leave tests do not."""
    from gateway.verify.face.keys import create_key_file

    settings = bridge_settings(tmp_path, base_url, roster_interval_s=0.1)
    key_file = tmp_path / "face.key"
    create_key_file(key_file)
    return settings.model_copy(
        update={"face": settings.face.model_copy(update={"enabled": enabled, "key_file": key_file})}
    )


async def templates(settings: TackSettings) -> dict[str, list[npt.NDArray[np.float64]]]:
    """person -> the encodings of their roster templates."""
    from gateway.verify.face.keys import load_key
    from gateway.verify.face.templates import TemplateStore

    db = await open_database(settings.db_path)
    try:
        loaded = await TemplateStore(db, load_key(settings.face_key_file)).load()
    finally:
        await db.close()
    out: dict[str, list[npt.NDArray[np.float64]]] = {}
    for t in loaded.templates:
        assert t.source == "roster"
        out.setdefault(t.person_id, []).append(t.encoding)
    return out


async def photo_state(settings: TackSettings, person_id: str) -> dict[str, Any] | None:
    db = await open_database(settings.db_path)
    try:
        raw = await get_value(db, PHOTO_KEY_PREFIX + person_id)
    finally:
        await db.close()
    return json.loads(raw) if raw else None


async def passes(bridge: Bridge, n: int) -> None:
    start = bridge.counters.roster_pulls

    async def done() -> bool:
        return bridge.counters.roster_pulls >= start + n

    await eventually(done, f"{n} more roster passes")


async def test_photo_is_enrolled_once_and_not_again_after_a_restart(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0001", PUTIN_1)
    backend.state.set_photo("u0002", CHIRAC)
    settings = face_settings(tmp_path, backend.base_url)

    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        await passes(bridge, 3)  # later passes see the same avatar URLs
        counters = bridge.counters
    assert (counters.photos_fetched, counters.photos_enrolled, counters.photos_refused) == (2, 2, 0)
    assert backend.state.snapshot()["calls"]["photo"] == 2
    first = await templates(settings)
    assert {p: len(ids) for p, ids in first.items()} == {"u0001": 1, "u0002": 1}

    async with Bridge(settings) as bridge:  # a restart remembers what it enrolled
        await passes(bridge, 2)
        assert bridge.counters.photos_fetched == 0
    assert backend.state.snapshot()["calls"]["photo"] == 2
    again = await templates(settings)
    assert {p: len(e) for p, e in again.items()} == {"u0001": 1, "u0002": 1}
    assert np.array_equal(again["u0001"][0], first["u0001"][0])


async def test_changed_photo_replaces_the_template(backend: BackendServer, tmp_path: Path) -> None:
    backend.state.set_photo("u0001", PUTIN_1)
    settings = face_settings(tmp_path, backend.base_url)

    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        before = await templates(settings)
        backend.state.set_photo("u0001", PUTIN_2)

        async def reenrolled() -> bool:
            return bridge.counters.photos_enrolled == 2

        await eventually(reenrolled, "the new photo enrolled")
        await passes(bridge, 2)
        assert bridge.counters.photos_enrolled == 2
    after = await templates(settings)
    assert len(after["u0001"]) == 1  # replaced, not piled up
    assert not np.allclose(after["u0001"][0], before["u0001"][0])
    state = await photo_state(settings, "u0001")
    assert state is not None
    assert state["status"] == "enrolled"
    assert "v=" in state["url"]


async def test_photo_without_a_face_is_reported_and_not_retried(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0003", no_face_jpeg())
    settings = face_settings(tmp_path, backend.base_url)

    async with Bridge(settings) as bridge:
        await passes(bridge, 4)
        counters = bridge.counters
    assert (counters.photos_fetched, counters.photos_refused, counters.photos_enrolled) == (1, 1, 0)
    assert counters.last_error is not None
    assert "u0003" in counters.last_error
    assert "face_not_found" in counters.last_error
    assert backend.state.snapshot()["calls"]["photo"] == 1
    state = await photo_state(settings, "u0003")
    assert state is not None
    assert (state["status"], state["reason"]) == ("refused", "face_not_found")
    assert await templates(settings) == {}

    backend.state.set_photo("u0003", CHIRAC)  # a better photo is tried at once
    async with Bridge(settings) as bridge:

        async def enrolled() -> bool:
            return bridge.counters.photos_enrolled == 1

        await eventually(enrolled, "the replacement photo enrolled")
    assert list(await templates(settings)) == ["u0003"]


async def test_photo_over_the_size_limit_is_refused_without_reading_it_all(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0004", PUTIN_1)
    settings = face_settings(tmp_path, backend.base_url)
    settings = settings.model_copy(
        update={"face": settings.face.model_copy(update={"max_bytes": 4096})}
    )
    async with Bridge(settings) as bridge:
        await passes(bridge, 3)
        assert bridge.counters.photos_refused == 1
    state = await photo_state(settings, "u0004")
    assert state is not None
    assert state["reason"] == "image_too_large"
    assert backend.state.snapshot()["calls"]["photo"] == 1


async def test_face_disabled_means_no_photo_is_fetched(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0001", PUTIN_1)
    settings = face_settings(tmp_path, backend.base_url, enabled=False)
    async with Bridge(settings) as bridge:
        await passes(bridge, 3)
        assert bridge.counters.photos_fetched == 0
    assert backend.state.snapshot()["calls"]["photo"] == 0
    assert await photo_state(settings, "u0001") is None


async def test_person_who_leaves_loses_their_roster_template(
    backend: BackendServer, tmp_path: Path
) -> None:
    roster = [
        {"userid": "u0001", "name": "A", "card": "C0001", "active": True},
        {"userid": "u0002", "name": "B", "card": "C0002", "active": True},
    ]
    backend.state.set_roster(roster)
    backend.state.set_photo("u0001", PUTIN_1)
    backend.state.set_photo("u0002", CHIRAC)
    settings = face_settings(tmp_path, backend.base_url)
    async with Bridge(settings) as bridge:
        await passes(bridge, 1)
        assert set(await templates(settings)) == {"u0001", "u0002"}
        roster[0]["active"] = False
        backend.state.set_roster(roster)
        await passes(bridge, 2)
    assert set(await templates(settings)) == {"u0002"}
    assert await photo_state(settings, "u0001") is None


async def test_photo_download_failures_are_retried_later(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0001", PUTIN_1)
    backend.state.set_faults(Faults(fail_photos=2))
    settings = face_settings(tmp_path, backend.base_url)
    async with Bridge(settings) as bridge:

        async def enrolled() -> bool:
            return bridge.counters.photos_enrolled == 1

        await eventually(enrolled, "the photo enrolled after two HTTP 503s")
        assert bridge.counters.photos_refused == 0
    assert backend.state.snapshot()["calls"]["photo"] == 3


def local_ms(tz: ZoneInfo, day: dt.date, hour: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hour), tz).timestamp() * 1000)


async def test_leave_is_stored_and_seen_by_the_policy(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    tz = ZoneInfo(settings.attendance.timezone)
    today = dt.datetime.now(tz).date()
    # u0002: today, a whole day; u0003: the next two days, ending at midnight (not a third day);
    # u0004: two months ahead (outside the window); u0005: half a day, ten days ago (outside).
    tomorrow = today + dt.timedelta(days=1)
    backend.state.add_leave("u0002", local_ms(tz, today), local_ms(tz, tomorrow))
    backend.state.add_leave(
        "u0003", local_ms(tz, tomorrow), local_ms(tz, tomorrow + dt.timedelta(days=2)), "sick"
    )
    backend.state.add_leave(
        "u0004",
        local_ms(tz, today + dt.timedelta(days=60)),
        local_ms(tz, today + dt.timedelta(days=61)),
    )
    backend.state.add_leave(
        "u0005",
        local_ms(tz, today - dt.timedelta(days=10), 9),
        local_ms(tz, today - dt.timedelta(days=10), 13),
    )

    async with Bridge(settings) as bridge:

        async def pulled() -> bool:
            return bridge.counters.leave_pulls >= 1

        await eventually(pulled, "a leave pull")
        assert bridge.counters.leave_days == 3

    db = await open_database(settings.db_path)
    try:
        leave = await leave_between(
            db, today - dt.timedelta(days=30), today + dt.timedelta(days=90)
        )
        assert await get_value(db, LEAVE_PULLED_KEY)
        policy = Policy.from_settings(settings.attendance)
        at_nine = local_ms(tz, today, 9)
        on_leave = await classify_punch(db, policy, Person("u0002", "Person 0002"), at_nine)
        working = await classify_punch(db, policy, Person("u0001", "Person 0001"), at_nine)
    finally:
        await db.close()
    assert leave == {
        "u0002": {today: "annual"},
        "u0003": {tomorrow: "sick", tomorrow + dt.timedelta(days=1): "sick"},
    }
    assert on_leave.on_leave is True
    assert working.on_leave is False


async def test_backend_outage_is_retried_for_photos_and_leave(
    backend: BackendServer, tmp_path: Path
) -> None:
    backend.state.set_photo("u0001", PUTIN_1)
    tz = ZoneInfo("Asia/Shanghai")
    today = dt.datetime.now(tz).date()
    backend.state.add_leave(
        "u0002", local_ms(tz, today), local_ms(tz, today + dt.timedelta(days=1))
    )
    settings = face_settings(tmp_path, backend.base_url)
    backend.stop()  # down before the bridge starts; same port when it comes back

    async with Bridge(settings) as bridge:

        async def failing() -> bool:
            return bridge.counters.last_error is not None

        await eventually(failing, "the outage noticed")
        assert bridge.counters.roster_pulls == 0
        backend.start()

        async def recovered() -> bool:
            c = bridge.counters
            return c.photos_enrolled == 1 and c.leave_pulls >= 1

        await eventually(recovered, "photo enrolled and leave pulled after the outage")
    assert list(await templates(settings)) == ["u0001"]
    db = await open_database(settings.db_path)
    try:
        assert await leave_between(db, today, today) == {"u0002": {today: "annual"}}
    finally:
        await db.close()
