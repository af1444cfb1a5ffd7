"""The backend simulator's pull APIs over real HTTP: roster changes, attendance groups and
positions, meeting rooms and bookings, leave quotas, and their /_sim/ controls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.backend import BackendServer, Errcode, demo_roster


@pytest.fixture
def client(backend: BackendServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.base_url, timeout=10.0) as c:
        yield c


def call(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    tok = client.get(
        "/gettoken", params={"appkey": "tack-demo", "appsecret": "tack-demo-secret"}
    ).json()["access_token"]
    data: dict[str, Any] = client.post(path, params={"access_token": tok}, json=body).json()
    return data


def read_all(
    client: httpx.Client, path: str, body: dict[str, Any], between: Any = None
) -> list[dict[str, Any]]:
    """Every page, ``between(page_number)`` called after each page."""
    out: list[dict[str, Any]] = []
    cursor = None
    for n in range(100):
        result = call(client, path, {**body, **({"cursor": cursor} if cursor else {})})["result"]
        out += result["list"]
        if between is not None:
            between(n)
        if not result["has_more"]:
            return out
        cursor = result["next_cursor"]
    raise AssertionError("paging never ended")


def test_roster_changes_are_listed_in_change_order_and_none_is_lost_while_paging(
    backend: BackendServer, client: httpx.Client
) -> None:
    roster = demo_roster(9)
    backend.state.set_roster(roster)
    everyone = read_all(client, "/topapi/v2/user/list", {"size": 3, "modified_since": 0})
    assert len(everyone) == 9
    since = max(p["modified_time"] for p in everyone) + 1
    assert read_all(client, "/topapi/v2/user/list", {"modified_since": since}) == []

    roster[1]["name"] = "Changed first"
    roster[7]["name"] = "Changed second"
    backend.state.set_roster(roster)

    def change_u0002_again(page: int) -> None:
        if page == 0:  # already read, changed again: it must come round again behind the cursor
            roster[1]["name"] = "Changed again"
            backend.state.set_roster(roster)

    changes = read_all(
        client, "/topapi/v2/user/list", {"size": 1, "modified_since": since}, change_u0002_again
    )
    assert [(p["userid"], p["name"]) for p in changes] == [
        ("u0002", "Changed first"),
        ("u0008", "Changed second"),
        ("u0002", "Changed again"),
    ]


def test_photo_change_counts_as_a_roster_change(
    backend: BackendServer, client: httpx.Client
) -> None:
    everyone = read_all(client, "/topapi/v2/user/list", {"modified_since": 0})
    since = max(p["modified_time"] for p in everyone) + 1
    backend.state.set_photo("u0003", b"\xff\xd8 not really a jpeg")
    changed = read_all(client, "/topapi/v2/user/list", {"modified_since": since})
    assert [p["userid"] for p in changed] == ["u0003"]
    assert "avatar" in changed[0]


def test_attendance_groups_and_positions(client: httpx.Client) -> None:
    groups = [
        {
            "group_id": i,
            "group_name": f"g{i}",
            "classes": [
                {"class_id": 1, "class_name": "day", "on_duty": "09:00", "off_duty": "18:00"}
            ],
            "positions": [
                {"position_id": f"p{i}-{j}", "latitude": 31.0, "longitude": 121.0, "offset": 100}
                for j in range(3)
            ],
        }
        for i in range(12)
    ]
    assert client.put("/_sim/attendance/groups", json={"groups": groups}).json() == {"groups": 12}
    first = call(client, "/topapi/attendance/getsimplegroups", {"offset": 0, "size": 10})
    assert first["result"]["has_more"] is True
    assert len(first["result"]["groups"]) == 10
    assert "positions" not in first["result"]["groups"][0]  # they have their own API
    assert first["result"]["groups"][0]["classes"][0]["on_duty"] == "09:00"
    positions = call(
        client, "/topapi/attendance/group/positions/query", {"group_id": 11, "size": 2}
    )["result"]
    assert [p["position_id"] for p in positions["list"]] == ["p11-0", "p11-1"]
    assert positions["next_cursor"] == 2
    unknown = call(client, "/topapi/attendance/group/positions/query", {"group_id": 99})
    assert unknown["errcode"] == Errcode.INVALID_PARAMETER
    bad = client.put(
        "/_sim/attendance/groups",
        json={"groups": [{"group_id": 1, "group_name": "g", "classes": [{"class_id": 1}]}]},
    )
    assert bad.status_code == 422


def test_bookings_are_listed_by_change_and_cancellations_show(
    backend: BackendServer, client: httpx.Client
) -> None:
    client.put("/_sim/meetingrooms", json={"rooms": [{"room_id": "r1", "room_name": "Lotus"}]})
    for i in range(3):
        resp = client.put(
            f"/_sim/meetingrooms/bookings/b{i}",
            json={"room_id": "r1", "start_time": 1000 * i, "end_time": 1000 * i + 500},
        )
        assert resp.status_code == 200
    rooms = call(client, "/topapi/meetingroom/list", {})["result"]["list"]
    assert [(r["room_id"], r["room_name"]) for r in rooms] == [("r1", "Lotus")]
    every = read_all(client, "/topapi/meetingroom/booking/list", {"size": 2})
    since = max(b["modified_time"] for b in every) + 1
    assert client.delete("/_sim/meetingrooms/bookings/b1").json() == {"cancelled": "b1"}
    assert client.delete("/_sim/meetingrooms/bookings/nope").status_code == 404
    changed = read_all(client, "/topapi/meetingroom/booking/list", {"modified_since": since})
    assert [(b["booking_id"], b["status"]) for b in changed] == [("b1", "cancelled")]
    bad = call(client, "/topapi/meetingroom/booking/list", {"cursor": "not-a-cursor"})
    assert bad["errcode"] == Errcode.INVALID_PARAMETER
    backwards = client.put(
        "/_sim/meetingrooms/bookings/b9", json={"room_id": "r1", "start_time": 5, "end_time": 5}
    )
    assert backwards.status_code == 422


def test_leave_quotas_come_times_100_in_days_or_hours(client: httpx.Client) -> None:
    quotas = [
        {"userid": "u0001", "leave_code": "annual", "quota": 10, "used": 2.5},
        {"userid": "u0001", "leave_code": "sick", "unit": "hour", "quota": 16, "used": 4},
    ]
    assert client.put("/_sim/vacation/quotas", json={"quotas": quotas}).json() == {"quotas": 2}
    result = call(client, "/topapi/attendance/vacation/quota/list", {"userids": "u0001,u0002"})
    annual, sick = result["result"]["leave_quotas"]
    assert (annual["quota_num_per_day"], annual["used_num_per_day"]) == (1000, 250)
    assert (sick["quota_num_per_hour"], sick["used_num_per_hour"]) == (1600, 400)
    assert sick["quota_num_per_day"] == 0
    many = ",".join(f"u{i:04d}" for i in range(51))
    too_many = call(client, "/topapi/attendance/vacation/quota/list", {"userids": many})
    assert too_many["errcode"] == Errcode.INVALID_PARAMETER


def test_pull_apis_need_a_valid_token(client: httpx.Client) -> None:
    resp = client.post(
        "/topapi/meetingroom/list", params={"access_token": "forged"}, json={}
    ).json()
    assert resp["errcode"] == Errcode.INVALID_TOKEN
