"""A person removed at the backend can no longer clock in, and the gateway keeps none of their
face templates: a real gateway on a real broker, the bridge beside it on the same store, the
backend simulator over HTTP, dlib encoding the project's photos."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_bridge.runner import Bridge
from devices.protocol import AckStatus, ReasonCode
from gateway.store.database import open_database
from simulators.backend import BackendServer
from tests.cloud_bridge.helpers import eventually, people
from tests.fixtures.faces import CHIRAC, PUTIN
from tests.fixtures.gateway import RawDevice

ROSTER = [
    {"userid": "b1", "name": "Leaving Soon", "card": "K0001", "active": True},
    {"userid": "b2", "name": "Staying", "card": "K0002", "active": True},
]


def templates_of(db_path: Path) -> dict[str, set[str]]:
    """person -> the sources of their face templates."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT person_id, source FROM face_templates").fetchall()
    out: dict[str, set[str]] = {}
    for person, source in rows:
        out.setdefault(person, set()).add(source)
    return out


async def test_person_removed_at_the_backend_cannot_clock_in_and_loses_every_template(
    backend: BackendServer,
    gateway_factory: Callable[..., Any],
    raw_device: Callable[[str], RawDevice],
    tmp_path: Path,
) -> None:
    from gateway.verify.face import enroll_photos
    from gateway.verify.face.keys import create_key_file, load_key

    backend.state.set_roster(ROSTER)
    backend.state.set_photo("b1", PUTIN[0].read_bytes())
    backend.state.set_photo("b2", CHIRAC.read_bytes())
    gw = await gateway_factory(devices=["term-001"])
    key_file = tmp_path / "face.key"
    create_key_file(key_file)
    settings = gw.settings.model_copy(
        update={
            "bridge": gw.settings.bridge.model_copy(
                update={
                    "enabled": True,
                    "base_url": backend.base_url,
                    "roster_interval_s": 0.2,
                    "roster_full_every": 1,
                    "backoff_max_s": 1.0,
                }
            ),
            "face": gw.settings.face.model_copy(update={"key_file": key_file, "enabled": True}),
        }
    )
    dev = raw_device("term-001")

    async with Bridge(settings) as bridge:

        async def enrolled() -> bool:
            return bridge.counters.photos_enrolled == 2

        await eventually(enrolled, "both backend photos enrolled")
        # A second template of b1's, enrolled by hand at the gateway (`tack faces enroll`).
        db = await open_database(settings.db_path)
        try:
            await enroll_photos(db, load_key(key_file), "b1", [PUTIN[1].read_bytes()], source="cli")
        finally:
            await db.close()
        assert templates_of(settings.db_path) == {"b1": {"roster", "cli"}, "b2": {"roster"}}

        dev.send(dev.envelope(body={"card": "K0001"}))
        before = await dev.next_ack()
        assert (before.status, before.reason) == (AckStatus.ACCEPTED, ReasonCode.OK)

        backend.state.set_roster(ROSTER[1:])  # b1 left: the backend no longer lists them

        async def departed() -> bool:
            return (await people(settings.db_path))["b1"].active is False

        await eventually(departed, "b1 noticed as gone")

    assert templates_of(settings.db_path) == {"b2": {"roster"}}

    async def refused() -> bool:
        dev.send(dev.envelope(body={"card": "K0001"}))
        ack = await dev.next_ack()
        return ack.reason is ReasonCode.PERSON_INACTIVE

    await eventually(refused, "b1's card refused at the gateway (registry refresh)")
    dev.send(dev.envelope(body={"card": "K0002"}))
    still = await dev.next_ack()
    assert (still.status, still.reason) == (AckStatus.ACCEPTED, ReasonCode.OK)
