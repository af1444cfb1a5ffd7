"""Generated from the app's route table: every route declares who may call it, answers 401
without credentials and 403 to every role the permission table leaves out. A route added
without a declaration fails here, as does a public route nobody documented as public."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from gateway.admin.app import create_app
from gateway.admin.auth import Requires, declared_permission
from gateway.admin.permissions import ROLE_PERMISSIONS, Role, matrix_markdown
from tests.admin.conftest import Admin, admin_settings

# The routes anyone may call, as docs/admin.md lists them ("Public routes").
PUBLIC = {
    ("GET", "/api/health"),
    ("POST", "/api/login"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/prefs"),
}
# FastAPI's own pages (no data) and the stylesheet.
PUBLIC_FRAMEWORK = {"/api/docs", "/api/docs/oauth2-redirect", "/api/openapi.json"}
PUBLIC_MOUNTS = {"/static"}
SAMPLE_PATH_VALUES = {
    "device_id": "lobby-1",
    "person_id": "u001",
    "record_id": "1",
    "username": "vera",
}
USERS = {Role.ADMIN: "alice", Role.FACILITIES: "fred", Role.VIEWER: "vera"}


@dataclass(frozen=True)
class Entry:
    path: str  # as served, prefixes included
    methods: frozenset[str]
    declared: Requires | None


def _route_table(tmp_path: Path) -> list[Entry]:
    """Every route of the app, read from its route table (routers included)."""
    app = create_app(admin_settings(tmp_path), db=None)  # type: ignore[arg-type]
    table: list[Entry] = []
    for ctx in iter_route_contexts(app.routes):
        route, path = ctx.original_route, str(ctx.path)
        if isinstance(route, APIRoute):
            table.append(
                Entry(path, frozenset(route.methods - {"HEAD"}), declared_permission(route))
            )
        elif isinstance(route, Mount):
            assert path in PUBLIC_MOUNTS, f"undocumented mount {path}"
        elif isinstance(route, Route):
            assert path in PUBLIC_FRAMEWORK, f"route {path} bypasses the permissions"
        else:
            pytest.fail(f"unknown kind of route {route!r}")
    assert len(table) > 30
    return table


def _calls(entry: Entry) -> list[tuple[str, str]]:
    path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], entry.path)
    return [(method, path) for method in sorted(entry.methods)]


def test_every_route_declares_a_permission_or_is_documented_public(tmp_path: Path) -> None:
    undeclared, undocumented = [], []
    for entry in _route_table(tmp_path):
        for method in entry.methods:
            if entry.declared is None:
                undeclared.append(f"{method} {entry.path}")
            elif entry.declared.permission is None and (method, entry.path) not in PUBLIC:
                undocumented.append(f"{method} {entry.path}")
    assert undeclared == [], "routes without Requires(...) / PUBLIC"
    assert undocumented == [], "public routes missing from PUBLIC and docs/admin.md"


async def test_every_protected_route_answers_401_without_credentials(
    admin: Admin, tmp_path: Path
) -> None:
    wrong = []
    async with admin.client() as c:
        for entry in _route_table(tmp_path):
            assert entry.declared is not None
            if entry.declared.permission is None:
                continue
            for method, path in _calls(entry):
                for headers in ({}, {"Authorization": "Bearer not-a-session"}):
                    r = await c.request(method, path, json={}, headers=headers)
                    if r.status_code != 401:
                        wrong.append(f"{method} {path}: {r.status_code}")
    assert wrong == []


def _error_code(r: httpx.Response) -> str:
    """The API's JSON code; the UI's page says the same thing to a person."""
    if r.headers["content-type"].startswith("text/html"):
        return "forbidden" if "does not allow this" in r.text else r.text[:80]
    return str(r.json()["error"]["code"])


@pytest.mark.parametrize("role", list(Role))
async def test_every_route_answers_403_to_a_role_without_its_permission(
    admin: Admin, tmp_path: Path, role: Role
) -> None:
    token = await admin.token(USERS[role])
    wrong, checked = [], 0
    async with admin.client(token) as c:
        for entry in _route_table(tmp_path):
            assert entry.declared is not None
            needed = entry.declared.permission
            if needed is None or needed in ROLE_PERMISSIONS[role]:
                continue
            for method, path in _calls(entry):
                checked += 1
                r = await c.request(method, path, json={})
                if r.status_code != 403 or _error_code(r) != "forbidden":
                    wrong.append(f"{method} {path}: {r.status_code}")
    assert wrong == []
    if role is not Role.ADMIN:
        assert checked > 0  # the table does leave something out for this role


async def test_metrics_token_opens_metrics_and_nothing_else(tmp_path: Path) -> None:
    from gateway.admin.server import AdminServer
    from gateway.store import open_database

    settings = admin_settings(tmp_path, metrics_token="scrape-me-please")
    db = await open_database(settings.db_path)
    server = AdminServer(create_app(settings, db), "127.0.0.1", 0)
    await server.start()
    try:
        headers = {"Authorization": "Bearer scrape-me-please"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
            metrics = await c.get("/metrics", headers=headers)
            devices = await c.get("/api/devices", headers=headers)
    finally:
        await server.stop()
        await db.close()
    assert metrics.status_code == 200
    assert "tack_store_bytes" in metrics.text
    assert "tack_devices_online" in metrics.text
    assert devices.status_code == 401


def test_docs_show_the_permission_matrix_of_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "admin.md").read_text(encoding="utf-8")
    assert matrix_markdown() in doc, "regenerate the matrix: python -m gateway.admin.permissions"
    for method, path in PUBLIC:
        assert f"`{method} {path}`" in doc


def test_a_viewer_never_has_faces_read() -> None:
    from gateway.admin.permissions import Permission

    assert Permission.FACES_READ not in ROLE_PERMISSIONS[Role.VIEWER]
