"""The backend simulator over real HTTP: the API subset, its errcodes, and the /_sim/ knobs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.backend import BackendServer, BackendState, Errcode, demo_roster
from simulators.backend.state import now_ms

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def client(backend: BackendServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.base_url, timeout=10.0) as c:
        yield c


def token(client: httpx.Client) -> str:
    data = client.get(
        "/gettoken", params={"appkey": "tack-demo", "appsecret": "tack-demo-secret"}
    ).json()
    assert data["errcode"] == 0
    assert data["expires_in"] == 7200
    return str(data["access_token"])


def punch(key: str = "term-01:m1", userid: str = "u0001", **extra: Any) -> dict[str, Any]:
    return {
        "userid": userid,
        "device_id": "term-01",
        "device_name": "Lobby",
        "user_check_time": now_ms(),
        "idempotency_key": key,
        **extra,
    }


def upload(client: httpx.Client, tok: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/topapi/attendance/record/upload", params={"access_token": tok}, json=body)


def test_wrong_credentials_answer_40089_with_http_200(client: httpx.Client) -> None:
    resp = client.get("/gettoken", params={"appkey": "tack-demo", "appsecret": "nope"})
    assert resp.status_code == 200
    assert resp.json() == {"errcode": 40089, "errmsg": "invalid appkey or appsecret"}


def test_upload_stores_once_per_key(client: httpx.Client, backend: BackendServer) -> None:
    tok = token(client)
    first = upload(client, tok, punch()).json()
    again = upload(client, tok, punch()).json()
    assert (first["errcode"], first["result"]) == (0, {"duplicate": False})
    assert first["request_id"]
    assert (again["errcode"], again["result"]) == (0, {"duplicate": True})
    records = client.get("/_sim/records").json()
    assert records["count"] == 1
    assert records["max_stored_per_key"] == 1
    assert records["records"][0]["submissions"] == 2
    assert records["records"][0]["device_name"] == "Lobby"
    state = client.get("/_sim/state").json()
    assert (state["records"], state["submissions"], state["duplicates"]) == (1, 2, 1)


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (punch(userid="ghost"), Errcode.UNKNOWN_USERID),
        (punch(user_check_time=now_ms() - 181 * DAY_MS), Errcode.CHECK_TIME_OUT_OF_RANGE),
        ({"userid": "u0001"}, Errcode.INVALID_PARAMETER),
        (punch(user_check_time="soon"), Errcode.INVALID_PARAMETER),
    ],
    ids=["unknown-user", "too-old", "missing-fields", "wrong-type"],
)
def test_refusals(
    client: httpx.Client, backend: BackendServer, body: dict[str, Any], errcode: int
) -> None:
    resp = upload(client, token(client), body)
    assert resp.status_code == 200
    assert resp.json()["errcode"] == errcode
    assert resp.json()["errmsg"]
    assert backend.state.records() == []


def test_token_errors(client: httpx.Client, backend: BackendServer) -> None:
    assert upload(client, "", punch()).json()["errcode"] == Errcode.INVALID_TOKEN
    assert upload(client, "made-up", punch()).json()["errcode"] == Errcode.INVALID_TOKEN
    tok = token(client)
    assert client.post("/_sim/tokens", json={"expire": True}).json()["expired"] == 1
    assert upload(client, tok, punch()).json()["errcode"] == Errcode.TOKEN_EXPIRED
    tok = token(client)
    client.post("/_sim/tokens", json={"revoke": True})
    assert upload(client, tok, punch()).json()["errcode"] == Errcode.INVALID_TOKEN
    client.post("/_sim/tokens", json={"ttl_s": 60})
    resp = client.get("/gettoken", params={"appkey": "tack-demo", "appsecret": "tack-demo-secret"})
    assert resp.json()["expires_in"] == 60
    assert backend.state.records() == []


def test_roster_paging_is_stable_and_lists_leavers(client: httpx.Client) -> None:
    roster = demo_roster(7)
    roster[2]["active"] = False
    assert client.put("/_sim/roster", json={"people": roster}).json() == {"people": 7}
    tok = token(client)
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        body: dict[str, Any] = {"size": 3}
        if cursor:
            body["cursor"] = cursor
        result = client.post(
            "/topapi/v2/user/list", params={"access_token": tok}, json=body
        ).json()["result"]
        seen += result["list"]
        if not result["has_more"]:
            assert result["next_cursor"] is None
            break
        cursor = result["next_cursor"]
    assert [p["userid"] for p in seen] == [f"u{i:04d}" for i in range(1, 8)]
    assert seen[2]["active"] is False
    assert set(seen[0]) == {
        "userid",
        "name",
        "card",
        "job_number",
        "dept",
        "active",
        "modified_time",
    }


def test_roster_needs_a_token(client: httpx.Client) -> None:
    resp = client.post("/topapi/v2/user/list", json={"size": 3})
    assert resp.json()["errcode"] == Errcode.INVALID_TOKEN


def test_fail_status_and_throttle_faults(client: httpx.Client, backend: BackendServer) -> None:
    tok = token(client)
    client.put("/_sim/faults", json={"fail_status": 2, "throttle": 1})
    assert upload(client, tok, punch("k1")).status_code == 500
    assert upload(client, tok, punch("k1")).status_code == 500
    assert upload(client, tok, punch("k1")).json()["errcode"] == Errcode.RATE_LIMITED
    assert upload(client, tok, punch("k1")).json()["errcode"] == 0
    assert [r["idempotency_key"] for r in backend.state.records()] == ["k1"]
    assert client.get("/_sim/state").json()["calls"]["upload"] == 4


def test_hold_after_commit_stores_first_and_lets_go_when_cleared(
    client: httpx.Client, backend: BackendServer
) -> None:
    tok = token(client)
    client.put("/_sim/faults", json={"hold_after_commit_s": 60})
    answer: list[httpx.Response] = []
    held = threading.Thread(target=lambda: answer.append(upload(client, tok, punch("held"))))
    held.start()
    deadline = time.monotonic() + 10
    while not backend.state.records():
        assert time.monotonic() < deadline, "the held upload was never stored"
        time.sleep(0.02)
    assert not answer  # stored, but not yet answered: the crash window
    client.put("/_sim/faults", json={})
    held.join(10)
    assert answer[0].json()["errcode"] == 0


def test_reset_forgets_records_but_keeps_the_roster(
    client: httpx.Client, backend: BackendServer
) -> None:
    upload(client, token(client), punch())
    client.post("/_sim/reset")
    state = client.get("/_sim/state").json()
    assert (state["records"], state["tokens_issued"], state["people"]) == (0, 0, 20)


def test_bad_fault_settings_are_refused(client: httpx.Client) -> None:
    assert client.put("/_sim/faults", json={"fail_status": -1}).status_code == 422
    assert client.put("/_sim/faults", json={"bogus": 1}).status_code == 422


def test_demo_roster_is_deterministic() -> None:
    people = demo_roster(12)
    assert people == demo_roster(12)
    assert people[0] == {
        "userid": "u0001",
        "name": "Person 0001",
        "card": "C0001",
        "job_number": "E0001",
        "dept": "Engineering",
        "active": True,
    }
    assert demo_roster(12345)[0]["card"] == "C00001"


def test_stop_releases_port_and_thread() -> None:
    server = BackendServer(BackendState())
    server.start()
    port = server.port
    with httpx.Client() as c:
        assert c.get(f"{server.base_url}/_sim/state").status_code == 200
    server.stop()
    assert not server.running
    assert not any(t.name == f"tack-backend-sim:{port}" for t in threading.enumerate())
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again


def test_context_manager_on_a_given_port() -> None:
    first = BackendServer()
    first.start()
    port = first.port
    first.stop()
    with BackendServer(port=port) as again:
        assert again.port == port
        assert httpx.get(f"{again.base_url}/_sim/state").status_code == 200


def test_rate_limit_answers_90002_over_the_limit_and_counts_it(
    client: httpx.Client, backend: BackendServer
) -> None:
    assert client.put("/_sim/limits", json={"rate_limit_per_s": 3}).json() == {
        "rate_limit_per_s": 3
    }
    tok = token(client)
    codes = [upload(client, tok, punch(key=f"term-01:r{i}")).json()["errcode"] for i in range(5)]
    assert codes == [0, 0, 0, Errcode.RATE_LIMITED, Errcode.RATE_LIMITED]
    state = client.get("/_sim/state").json()
    assert state["rate_limited"] == {"upload": 2}
    assert state["records"] == 3


def test_faults_set_over_http_drop_the_answer_after_storing(
    client: httpx.Client, backend: BackendServer
) -> None:
    tok = token(client)
    assert client.put("/_sim/faults", json={"drop_after_commit": 1}).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        upload(client, tok, punch(key="term-01:d1"))
    again = upload(client, tok, punch(key="term-01:d1")).json()
    assert again["result"] == {"duplicate": True}  # it was stored before the answer was cut


def test_429_with_retry_after_and_an_outage_on_the_backend_clock(
    client: httpx.Client, backend: BackendServer
) -> None:
    tok = token(client)
    client.put("/_sim/faults", json={"fail_status": 1, "fail_status_code": 429, "retry_after_s": 2})
    resp = upload(client, tok, punch(key="term-01:t1"))
    assert (resp.status_code, resp.headers["retry-after"]) == (429, "2")
    until = client.get("/_sim/state").json()["clock_ms"] + 3_600_000
    client.put("/_sim/faults", json={"outage_until_ms": until})
    assert upload(client, tok, punch(key="term-01:t2")).status_code == 503
    assert client.get("/gettoken", params={"appkey": "tack-demo"}).status_code == 503
    assert client.get("/_sim/state").json()["calls"]["outage"] == 2
