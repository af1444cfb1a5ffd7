"""The admin app served over real HTTP (uvicorn on a free port, on the test's loop) against a
real store file seeded with a small office (simulators/admin_site.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.admin.app import create_app
from gateway.admin.server import AdminServer
from gateway.config import TackSettings, load_settings
from gateway.store import open_database
from gateway.store.records import now_ms
from simulators.admin_site import PASSWORD, Site, seed_site

FRAME_JPEG = (
    Path(__file__).parents[1] / "data" / "faces" / "jacques_chirac" / "Jacques_Chirac_0002.jpg"
)


class Clock:
    """The app's clock, which a test can move forward (session expiry) without sleeping."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms

    def advance(self, minutes: float) -> None:
        self.ms += int(minutes * 60_000)


@dataclass
class Admin:
    url: str
    settings: TackSettings
    site: Site
    clock: Clock
    db_path: Path

    def client(self, token: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kw)

    async def token(self, username: str, password: str = PASSWORD) -> str:
        async with self.client() as c:
            r = await c.post("/api/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def admin_settings(tmp_path: Path, **admin: Any) -> TackSettings:
    return load_settings(
        None,
        site="hq",
        data_dir=str(tmp_path / "data"),
        bridge={"enabled": False},
        admin=admin,
    )


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    settings = admin_settings(tmp_path)
    clock = Clock()
    db = await open_database(settings.db_path)
    site = await seed_site(db, settings, clock(), frame_jpeg=FRAME_JPEG.read_bytes())
    server = AdminServer(create_app(settings, db, clock=clock), "127.0.0.1", 0)
    await server.start()
    try:
        yield Admin(f"http://127.0.0.1:{server.port}", settings, site, clock, settings.db_path)
    finally:
        await server.stop()
        await db.close()
