"""The UI's forms over real HTTP as a browser would post them: the login form's own token, the
session cookie's attributes, CSRF on every change, and no redirect off the site."""

from __future__ import annotations

import re
import sqlite3

import httpx

from simulators.admin_site import PASSWORD
from tests.admin.conftest import Admin


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


async def _log_in(c: httpx.AsyncClient, username: str, next_url: str = "/") -> httpx.Response:
    page = await c.get("/login")
    return await c.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": _field(page.text, "csrf_token"),
            "next": next_url,
        },
    )


async def test_login_sets_a_strict_httponly_cookie_and_goes_where_asked(admin: Admin) -> None:
    async with admin.client() as c:
        r = await _log_in(c, "fred", "/records")
    assert r.status_code == 303
    assert r.headers["location"] == "/records"
    cookie = r.headers["set-cookie"].lower()
    assert "tack_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


async def test_login_never_redirects_to_another_site(admin: Admin) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        async with admin.client() as c:
            r = await _log_in(c, "fred", target)
        assert r.headers["location"] == "/"
    async with admin.client() as c:
        r = await c.get("/prefs", params={"lang": "zh", "next": "//evil.example"})
    assert r.headers["location"] == "/"


async def test_a_login_form_without_its_token_is_refused(admin: Admin) -> None:
    async with admin.client() as c:
        r = await c.post("/login", data={"username": "fred", "password": PASSWORD})
    assert r.status_code == 403
    assert "tack_session" not in r.headers.get("set-cookie", "")


async def test_revoke_form_needs_the_csrf_token(admin: Admin) -> None:
    async with admin.client() as c:
        await _log_in(c, "fred")
        forged = await c.post("/devices/lobby-1/revoke", data={})
        assert forged.status_code == 403
        confirm = await c.get("/devices/lobby-1/revoke")
        token = _field(confirm.text, "csrf_token")
        done = await c.post("/devices/lobby-1/revoke", data={"csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == "/devices/lobby-1?done=revoked"
    with sqlite3.connect(admin.db_path) as db:
        assert db.execute("SELECT revoked FROM devices WHERE device_id = 'lobby-1'").fetchone() == (
            1,
        )


async def test_the_ui_says_how_long_to_wait_after_too_many_failures(admin: Admin) -> None:
    async with admin.client() as c:
        for _ in range(5):
            page = await c.get("/login")
            await c.post(
                "/login",
                data={
                    "username": "vera",
                    "password": "not the password",
                    "csrf_token": _field(page.text, "csrf_token"),
                },
            )
        page = await c.get("/login", headers={"Accept-Language": "zh-CN"})
        r = await c.post(
            "/login",
            data={
                "username": "vera",
                "password": PASSWORD,
                "csrf_token": _field(page.text, "csrf_token"),
            },
            headers={"Accept-Language": "zh-CN"},
        )
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "登录失败次数过多" in r.text


async def test_logout_ends_the_session(admin: Admin) -> None:
    async with admin.client() as c:
        await _log_in(c, "vera")
        token = c.cookies["tack_session"]
        dashboard = await c.get("/")
        assert dashboard.status_code == 200
        out = await c.post("/logout", data={"csrf_token": _field(dashboard.text, "csrf_token")})
        assert out.status_code == 303
    async with admin.client(cookies={"tack_session": token}) as c:
        again = await c.get("/")
    assert again.status_code == 401
    assert 'name="password"' in again.text  # the login form, to come back here
