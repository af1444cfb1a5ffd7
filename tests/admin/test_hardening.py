"""Fixes from the admin app's review: logins sent at once, what a failed login records, the last
admin under concurrent changes, request body limits, logout, device add/revoke through the
broker's provisioning steps, and formulas in the CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiosqlite
import pytest

from gateway.admin import accounts
from gateway.admin.api.records import csv_cell
from simulators.admin_site import PASSWORD
from tests.admin.conftest import Admin


def _audit(admin: Admin, action: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(admin.db_path) as db:
        return list(
            db.execute(
                "SELECT actor, target, detail FROM audit_log WHERE action = ? ORDER BY id",
                (action,),
            )
        )


def _enabled_admins(admin: Admin) -> list[str]:
    with sqlite3.connect(admin.db_path) as db:
        rows = db.execute(
            "SELECT username FROM accounts WHERE role = 'admin' AND disabled = 0 ORDER BY 1"
        )
        return [str(r[0]) for r in rows]


async def test_logins_sent_at_once_cannot_pass_the_limit_together(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    running = 0
    most_at_once = 0
    real = accounts.password_matches

    async def counted(password_hash: str | None, password: str) -> bool:
        nonlocal checks, running, most_at_once
        checks += 1
        running += 1
        most_at_once = max(most_at_once, running)
        try:
            await asyncio.sleep(0.05)  # all ten are in flight before the first is answered
            return await real(password_hash, password)
        finally:
            running -= 1

    monkeypatch.setattr(accounts, "password_matches", counted)
    async with admin.client() as c:
        answers = await asyncio.gather(
            *(
                c.post("/api/login", json={"username": "fred", "password": f"wrong guess {i}"})
                for i in range(10)
            )
        )
    assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 5
    assert checks == 5
    assert most_at_once <= 2
    assert len(_audit(admin, "login.fail")) == 5


async def test_a_right_password_takes_back_its_count_for_the_address(admin: Admin) -> None:
    async with admin.client() as c:
        for _ in range(4):
            r = await c.post("/api/login", json={"username": "fred", "password": "wrong-one!"})
            assert r.status_code == 401
        r = await c.post("/api/login", json={"username": "fred", "password": PASSWORD})
        assert r.status_code == 200
        # The address has four failures, not five: one more wrong password is still answered.
        r = await c.post("/api/login", json={"username": "vera", "password": "wrong-one!"})
        assert r.status_code == 401
        r = await c.post("/api/login", json={"username": "vera", "password": "wrong-one!"})
        assert r.status_code == 429


async def test_a_failed_login_records_only_what_could_be_a_username(admin: Admin) -> None:
    async with admin.client() as c:
        for typed in ("My Secret [/]Phrase", " Fred ", "=cmd|x"):
            r = await c.post("/api/login", json={"username": typed, "password": "wrong-one!"})
            assert r.status_code == 401
    targets = [t for _, t, _ in _audit(admin, "login.fail")]
    assert targets == ["(not a valid username)", "fred", "(not a valid username)"]


async def test_two_admins_demoted_at_once_leave_one(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = accounts._keep_an_admin

    async def slow(db: aiosqlite.Connection, username: str) -> None:
        await real(db, username)
        await asyncio.sleep(0.1)  # both requests have counted before either changes anything

    monkeypatch.setattr(accounts, "_keep_an_admin", slow)
    token = await admin.token("alice")
    async with admin.client(token) as c:
        r = await c.post(
            "/api/accounts", json={"username": "bob", "role": "admin", "password": PASSWORD}
        )
        assert r.status_code == 201
        answers = await asyncio.gather(
            c.patch("/api/accounts/alice", json={"role": "viewer"}),
            c.patch("/api/accounts/bob", json={"disabled": True}),
        )
    assert sorted(r.status_code for r in answers) == [200, 409]
    assert len(_enabled_admins(admin)) == 1


async def test_a_refused_change_of_role_and_state_changes_nothing(admin: Admin) -> None:
    token = await admin.token("alice")
    async with admin.client(token) as c:
        r = await c.patch("/api/accounts/alice", json={"role": "admin", "disabled": True})
        assert r.status_code == 409
        assert "last enabled admin" in r.json()["error"]["message"]
        # Nothing was committed: no audit entry, and alice's session was not ended.
        assert (await c.get("/api/me")).status_code == 200
    assert _audit(admin, "account.role") == []
    assert _enabled_admins(admin) == ["alice"]


async def test_role_and_state_change_together(admin: Admin) -> None:
    async with admin.client(await admin.token("alice")) as c:
        r = await c.patch("/api/accounts/fred", json={"role": "viewer", "disabled": True})
    assert r.status_code == 200
    assert (r.json()["role"], r.json()["disabled"]) == ("viewer", True)
    assert [t for _, t, _ in _audit(admin, "account.role")] == ["fred"]
    assert json.loads(_audit(admin, "account.role")[0][2]) == {
        "role": "viewer",
        "was": "facilities",
    }
    assert [t for _, t, _ in _audit(admin, "account.disable")] == ["fred"]


async def test_an_oversized_body_is_refused_before_login(admin: Admin) -> None:
    async with admin.client() as c:
        r = await c.post("/api/login", json={"username": "fred", "password": "x" * (200 * 1024)})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "body_too_large"
        ui = await c.post("/login", data={"username": "fred", "password": "x" * (200 * 1024)})
        assert ui.status_code == 413
        assert ui.headers["content-type"].startswith("text/html")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"username": "fred", '
            yield b'"password": "wrong"}'

        r = await c.post(
            "/api/people/u001/faces",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert r.status_code == 411
        assert r.json()["error"]["code"] == "length_required"
    assert _audit(admin, "login.fail") == []


async def test_a_photo_upload_is_refused_from_its_length_alone(admin: Admin) -> None:
    """Only the headers are sent: the answer comes without the body ever being read."""
    url = urlsplit(admin.url)
    assert url.hostname is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    size = admin.settings.face.max_bytes + 1024 * 1024
    try:
        writer.write(
            (
                "POST /api/people/u001/faces HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "body_too_large"


async def test_a_photo_within_the_limit_still_reaches_the_route(admin: Admin) -> None:
    async with admin.client() as c:
        r = await c.post("/api/people/u001/faces", files={"photo": ("a.jpg", b"x" * 100_000)})
    assert r.status_code == 401  # past the size check, stopped by the login check


async def test_logout_with_another_scheme_ends_the_cookie_session(admin: Admin) -> None:
    async with admin.client() as c:
        body = (await c.post("/api/login", json={"username": "vera", "password": PASSWORD})).json()
    async with admin.client(cookies={"tack_session": body["token"]}) as c:
        r = await c.post(
            "/api/logout",
            headers={"Authorization": "Basic dmVyYTp4", "X-CSRF-Token": body["csrf_token"]},
        )
        assert r.status_code == 200
        assert "tack_session" in r.headers.get("set-cookie", "")
    async with admin.client(body["token"]) as c:
        assert (await c.get("/api/me")).status_code == 401


async def test_logout_with_a_bearer_token_ends_that_session_only(admin: Admin) -> None:
    one, two = await admin.token("vera"), await admin.token("vera")
    async with admin.client(one) as c:
        assert (await c.post("/api/logout")).status_code == 200
        assert (await c.get("/api/me")).status_code == 401
    async with admin.client(two) as c:
        assert (await c.get("/api/me")).status_code == 200


async def test_devices_are_added_and_revoked_as_the_cli_does(admin: Admin) -> None:
    async with admin.client(await admin.token("fred")) as c:
        r = await c.post("/api/devices", json={"device_id": "gate-7", "room_id": "r1"})
        assert r.status_code == 201
        assert r.json()["mqtt_password"]
        again = await c.post("/api/devices", json={"device_id": "gate-7"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "device_exists"
        assert (await c.post("/api/devices/gate-7/revoke")).status_code == 200
        twice = await c.post("/api/devices/gate-7/revoke")
        assert twice.status_code == 409
        assert twice.json()["error"]["code"] == "already_revoked"
        missing = await c.post("/api/devices/nope-1/revoke")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "no_such_device"
    [(actor, target, detail)] = _audit(admin, "device.add")[-1:]
    assert (actor, target) == ("web:fred", "gate-7")
    assert json.loads(detail) == {"type": "clock_terminal", "room": "r1", "credentials": True}
    assert [t for _, t, _ in _audit(admin, "device.revoke")] == ["gate-7"]
    with sqlite3.connect(admin.db_path) as db:
        [(site, revoked, created)] = db.execute(
            "SELECT site, revoked, created_ts_ms FROM devices WHERE device_id = 'gate-7'"
        )
    assert (site, revoked) == ("hq", 1)
    assert created > 0


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("  +1", "'  +1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("Li Wei", "Li Wei"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),
    ],
)
def test_csv_cells_that_look_like_formulas_are_quoted(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


async def test_csv_export_quotes_a_formula_in_a_name(admin: Admin) -> None:
    with sqlite3.connect(admin.db_path) as db:
        db.execute("UPDATE people SET name = '=1+2' WHERE name = 'Li Wei'")
    async with admin.client(await admin.token("fred")) as c:
        r = await c.get("/api/records/export.csv", params={"device": "lobby-1"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["person_name"] == "'=1+2"
