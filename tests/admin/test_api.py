"""The API as a client program sees it: logins, sessions, devices, records, faces, errors."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3

import pytest

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


async def test_health_needs_no_login_and_tells_nothing(admin: Admin) -> None:
    async with admin.client() as c:
        r = await c.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_wrong_password_is_refused_and_audited_without_the_password(admin: Admin) -> None:
    async with admin.client() as c:
        r = await c.post("/api/login", json={"username": "fred", "password": "hunter2-guess"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "login_failed"
    entries = _audit(admin, "login.fail")
    assert [(a, t) for a, t, _ in entries] == [("gateway", "fred")]
    assert "hunter2" not in entries[0][2]


async def test_five_failures_lock_the_name_with_retry_after(admin: Admin) -> None:
    async with admin.client() as c:
        for _ in range(5):
            r = await c.post("/api/login", json={"username": "fred", "password": "wrong-one!"})
            assert r.status_code == 401
        r = await c.post("/api/login", json={"username": "fred", "password": "wrong-one!"})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert r.json()["error"]["code"] == "rate_limited"
        # Even the right password waits: guessing gains nothing from the answers meanwhile.
        r = await c.post(
            "/api/login", json={"username": "fred", "password": "correct horse battery"}
        )
        assert r.status_code == 429
        # Another account from the same address: the address is locked too.
        r = await c.post(
            "/api/login", json={"username": "vera", "password": "correct horse battery"}
        )
        assert r.status_code == 429
    admin.clock.advance(5.1)
    async with admin.client() as c:
        r = await c.post(
            "/api/login", json={"username": "fred", "password": "correct horse battery"}
        )
    assert r.status_code == 200


async def test_a_session_ends_after_idle_time_and_after_its_lifetime(admin: Admin) -> None:
    token = await admin.token("vera")
    async with admin.client(token) as c:
        assert (await c.get("/api/me")).json()["role"] == "viewer"
        admin.clock.advance(29)
        assert (await c.get("/api/me")).status_code == 200
        admin.clock.advance(31)  # idle 31 min > session_idle_min 30
        assert (await c.get("/api/me")).status_code == 401
    token = await admin.token("vera")
    async with admin.client(token) as c:
        for _ in range(16):  # used every 29 min: never idle, but 8 h (480 min) is the limit
            admin.clock.advance(29)
            assert (await c.get("/api/me")).status_code == 200
        admin.clock.advance(29)
        assert (await c.get("/api/me")).status_code == 401


async def test_a_disabled_account_loses_its_session_at_once(admin: Admin) -> None:
    fred = await admin.token("fred")
    alice = await admin.token("alice")
    async with admin.client(alice) as c:
        r = await c.patch("/api/accounts/fred", json={"disabled": True})
        assert r.status_code == 200, r.text
    async with admin.client(fred) as c:
        assert (await c.get("/api/devices")).status_code == 401
    assert [t for _, t, _ in _audit(admin, "account.disable")] == ["fred"]


async def test_device_add_returns_the_mqtt_password_once(admin: Admin) -> None:
    token = await admin.token("fred")
    async with admin.client(token) as c:
        r = await c.post("/api/devices", json={"device_id": "gate-9", "name": "Garage gate"})
        assert r.status_code == 201, r.text
        password = r.json()["mqtt_password"]
        assert len(password) >= 16
        detail = await c.get("/api/devices/gate-9")
        listing = await c.get("/api/devices")
        again = await c.post("/api/devices", json={"device_id": "gate-9"})
    assert password not in detail.text + listing.text
    assert detail.json()["state"] == "offline"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "device_exists"
    with sqlite3.connect(admin.db_path) as db:
        stored = db.execute(
            "SELECT password_hash FROM mqtt_credentials WHERE username = 'gate-9'"
        ).fetchone()[0]
        dump = "\n".join(db.iterdump())
    assert password not in stored
    assert password not in dump
    assert [(a, t) for a, t, _ in _audit(admin, "device.add")][-1] == ("web:fred", "gate-9")


async def test_device_detail_has_presence_and_firmware(admin: Admin) -> None:
    token = await admin.token("vera")
    async with admin.client(token) as c:
        r = await c.get("/api/devices/lobby-1")
        found = await c.get("/api/devices", params={"q": "EAST"})
    assert r.json()["state"] == "online"
    assert r.json()["firmware"] == "1.4.2"
    assert [d["device_id"] for d in found.json()["items"]] == ["floor3-east"]


async def test_revoke_is_audited_and_the_device_shows_revoked(admin: Admin) -> None:
    token = await admin.token("fred")
    async with admin.client(token) as c:
        r = await c.post("/api/devices/lobby-2/revoke")
        assert r.status_code == 200, r.text
        assert (await c.get("/api/devices/lobby-2")).json()["state"] == "revoked"
        twice = await c.post("/api/devices/lobby-2/revoke")
    assert twice.status_code == 409
    assert _audit(admin, "device.revoke") == [("web:fred", "lobby-2", "{}")]


async def test_viewer_cannot_see_a_face_image_but_facilities_can(admin: Admin) -> None:
    rid = admin.site.frame_record_id
    async with admin.client(await admin.token("vera")) as c:
        listing = (await c.get("/api/records", params={"device": "lobby-1"})).json()
        frame = await c.get(f"/api/records/{rid}/frame")
    assert frame.status_code == 403
    assert frame.headers["content-type"].startswith("application/json")
    assert any(r["has_frame"] for r in listing["items"])
    async with admin.client(await admin.token("fred")) as c:
        frame = await c.get(f"/api/records/{rid}/frame")
    assert frame.status_code == 200
    assert frame.content[:2] == b"\xff\xd8"  # a JPEG
    assert frame.headers["cache-control"] == "no-store"
    assert _audit(admin, "face.view") == [("web:fred", f"record:{rid}", "{}")]


async def test_records_filter_and_page(admin: Admin) -> None:
    async with admin.client(await admin.token("vera")) as c:
        page1 = (await c.get("/api/records", params={"limit": 4})).json()
        page2 = (await c.get("/api/records", params={"limit": 4, "offset": 4})).json()
        failed = (await c.get("/api/records", params={"sync": "failed"})).json()
    assert page1["total"] == 6
    ids = [r["id"] for r in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 6
    assert [r["sync_error"] for r in failed["items"]] == ["errcode 33012: unknown user"]


async def test_csv_export_has_every_matching_record_and_no_card_numbers(admin: Admin) -> None:
    async with admin.client(await admin.token("fred")) as c:
        r = await c.get("/api/records/export.csv", params={"device": "lobby-1"})
        viewer = await c.get(
            "/api/records/export.csv",
            headers={"Authorization": f"Bearer {await admin.token('vera')}"},
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["person_name"] for row in rows] == ["Li Wei", "Wang Fang", "Zhang Min"]
    assert rows[0]["device_time"].endswith("+08:00")  # the site's zone, Asia/Shanghai
    assert "C000" not in r.text
    assert viewer.status_code == 403
    assert _audit(admin, "records.export")[0][0] == "web:fred"


async def test_bad_input_answers_with_a_reason_and_a_message(admin: Admin) -> None:
    async with admin.client(await admin.token("alice")) as c:
        bad_id = await c.post("/api/devices", json={"device_id": "no spaces/allowed"})
        bad_type = await c.post("/api/devices", json={"device_id": "ok-1", "type": "toaster"})
        bad_date = await c.get("/api/records", params={"since": "yesterday"})
        bad_limit = await c.get("/api/records", params={"limit": 0})
        missing = await c.get("/api/devices/nope")
        no_person = await c.post(
            "/api/people/nobody/faces", files={"photo": ("a.jpg", b"\xff\xd8junk", "image/jpeg")}
        )
        short_pw = await c.post(
            "/api/accounts", json={"username": "tom", "role": "viewer", "password": "short"}
        )
        bad_role = await c.post(
            "/api/accounts", json={"username": "tom", "role": "boss", "password": "long enough pw"}
        )
        empty_notice = await c.post("/api/notices", json={"text": " ", "all_terminals": True})
        bad_json = await c.post(
            "/api/devices", content=b"{", headers={"content-type": "application/json"}
        )
    for r, status, code in [
        (bad_id, 422, "invalid_input"),
        (bad_type, 422, "invalid_input"),
        (bad_date, 422, "invalid_input"),
        (bad_limit, 422, "invalid_input"),
        (missing, 404, "no_such_device"),
        (no_person, 404, "no_such_person"),
        (short_pw, 409, "refused"),
        (bad_role, 422, "invalid_input"),
        (empty_notice, 422, "invalid_notice"),
        (bad_json, 422, "invalid_input"),
    ]:
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == code
        assert len(error["message"]) > 10
    assert "device_id" in bad_id.json()["error"]["message"]
    assert "YYYY-MM-DD" in bad_date.json()["error"]["message"]
    assert "at least 10" in short_pw.json()["error"]["message"]
    assert "not valid JSON" in bad_json.json()["error"]["message"]


async def test_a_face_is_enrolled_from_an_upload_and_deleted(admin: Admin) -> None:
    from gateway.security.keyring import keyring_for
    from tests.fixtures.faces import PUTIN

    photo = {"photo": ("p.jpg", PUTIN[0].read_bytes(), "image/jpeg")}
    async with admin.client(await admin.token("fred")) as c:
        no_keys = await c.post("/api/people/u001/faces", files=photo)
        assert no_keys.status_code == 409
        assert "tack keys init" in no_keys.json()["error"]["message"]
        keyring_for(admin.settings)  # what the gateway's first start (or `tack keys init`) does
        r = await c.post("/api/people/u001/faces", files=photo)
        assert r.status_code == 201, r.text
        people = {p["person_id"]: p for p in (await c.get("/api/people")).json()["items"]}
        assert people["u001"]["face_templates"] == 1
        assert "card" not in people["u001"]
        gone = await c.delete("/api/people/u001/faces")
    assert gone.json()["removed"] == 1
    assert [t for _, t, _ in _audit(admin, "face.enroll")] == ["u001"]
    assert [t for _, t, _ in _audit(admin, "face.delete")] == ["u001"]


async def test_notices_are_sent_and_listed_unread(admin: Admin) -> None:
    async with admin.client(await admin.token("fred")) as c:
        r = await c.post(
            "/api/notices",
            json={"title": "Fire drill", "text": "At 15:00 today", "to": ["lobby-1"]},
        )
        assert r.status_code == 201, r.text
        unread = (await c.get("/api/notices/unread")).json()["items"]
    assert [(u["title"], u["device_id"]) for u in unread] == [("Fire drill", "lobby-1")]


async def test_rooms_list_today_s_bookings(admin: Admin) -> None:
    async with admin.client(await admin.token("vera")) as c:
        rooms = {r["room_id"]: r for r in (await c.get("/api/rooms")).json()["items"]}
    assert [b["subject"] for b in rooms["lotus"]["bookings"]] == ["Weekly sales", "Design review"]
    assert rooms["lotus"]["bookings"][0]["organizer"] == "Li Wei"


async def test_audit_verify_and_export(admin: Admin) -> None:
    async with admin.client(await admin.token("alice")) as c:
        verified = (await c.get("/api/audit/verify")).json()
        exported = await c.get("/api/audit/export", params={"format": "jsonl"})
    assert verified["ok"] is True
    assert verified["checked"] >= 5
    assert exported.text.count("\n") == verified["checked"]


async def test_cookie_session_needs_the_csrf_token_to_change_anything(admin: Admin) -> None:
    token = await admin.token("fred")
    async with admin.client(cookies={"tack_session": token}) as c:
        me = (await c.get("/api/me")).json()
        assert me["username"] == "fred"
        refused = await c.post("/api/devices/lobby-1/revoke")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_failed"
    async with admin.client() as c:
        r = await c.post(
            "/api/login", json={"username": "fred", "password": "correct horse battery"}
        )
        body = r.json()
    async with admin.client(cookies={"tack_session": body["token"]}) as c:
        ok = await c.post(
            "/api/devices/lobby-1/revoke", headers={"X-CSRF-Token": body["csrf_token"]}
        )
    assert ok.status_code == 200


async def test_backups_are_created_by_an_admin_and_listed(admin: Admin) -> None:
    async with admin.client(await admin.token("fred")) as c:
        assert (await c.get("/api/backups")).json()["items"] == []
        assert (await c.post("/api/backups")).status_code == 403
    async with admin.client(await admin.token("alice")) as c:
        made = await c.post("/api/backups")
        assert made.status_code == 201, made.text
        listed = (await c.get("/api/backups")).json()["items"]
    assert [b["name"] for b in listed] == [made.json()["name"]]
    assert listed[0]["size"] > 0
    assert [(a, t) for a, t, _ in _audit(admin, "backup.create")] == [
        ("web:alice", made.json()["name"])
    ]


async def test_no_secret_reaches_the_logs(admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with admin.client() as c:
        await c.post("/api/login", json={"username": "fred", "password": "wrong guess 123"})
    token = await admin.token("fred")
    async with admin.client(token) as c:
        added = await c.post("/api/devices", json={"device_id": "gate-7"})
        await c.get("/api/records/export.csv")
    secrets = [PASSWORD, "wrong guess 123", token, added.json()["mqtt_password"], "C0001"]
    assert caplog.records  # the app did log (the broker files, the store)
    for secret in secrets:
        assert secret not in caplog.text
