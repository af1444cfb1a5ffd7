"""``commands_v1.json``: ``cmd/time`` and ``cmd/schedule`` as the gateway writes them
(``encode_time``, ``encode_schedule``) and as a device reads them."""

from __future__ import annotations

import pytest

from devices.protocol import (
    MAX_CMD_BYTES,
    ProtocolError,
    ReasonCode,
    ScheduleItem,
    decode_notice,
    decode_schedule,
    decode_time,
    decode_time_zone,
    encode_notice,
    encode_schedule,
    encode_time,
)
from tests.protocol.support import (
    Case,
    expected_notices,
    expected_schedule,
    load_cases,
    params,
    payload_of,
)

FILE = "commands_v1.json"
DECODERS = {"time": decode_time, "schedule": decode_schedule, "notice": decode_notice}


@pytest.mark.parametrize("case", params(FILE))
def test_command_vector(case: Case) -> None:
    decode = DECODERS[case["command"]]
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(ProtocolError) as caught:
            decode(payload_of(case))
        assert caught.value.reason_code == ReasonCode(expect["reason"]), caught.value.message
        assert caught.value.field == expect.get("field"), caught.value.message
        return
    if case["command"] == "time":
        assert decode_time(payload_of(case)) == expect["ts_ms"]
        nxt = expect.get("tz_next")
        assert decode_time_zone(payload_of(case)) == (
            expect.get("tz_min"),
            tuple(nxt) if nxt else None,
        )
    elif case["command"] == "notice":
        assert decode_notice(payload_of(case)) == expected_notices(expect)
    else:
        assert decode_schedule(payload_of(case)) == expected_schedule(expect)


@pytest.mark.parametrize("case", [p for p in params(FILE, ok=True) if p.values[0].get("canonical")])
def test_canonical_command_is_what_the_gateway_writes(case: Case) -> None:
    expect = case["expect"]
    if case["command"] == "time":
        nxt = expect.get("tz_next")
        assert encode_time(
            expect["ts_ms"],
            tz_min=expect.get("tz_min"),
            tz_next=(nxt[0], nxt[1]) if nxt else None,
        ) == payload_of(case)
        return
    if case["command"] == "notice":
        notices = expected_notices(expect)
        assert notices.ts_ms is not None
        assert encode_notice(notices.ts_ms, notices.items) == payload_of(case)
        return
    schedule = expected_schedule(expect)
    assert schedule.ts_ms is not None
    written = encode_schedule(
        schedule.room,
        schedule.ts_ms,
        schedule.items,
        checkin_open_min=schedule.checkin_open_min,
        release_after_min=schedule.release_after_min,
        private=schedule.private,
    )
    assert written == payload_of(case)


@pytest.mark.parametrize("command", ["time", "schedule", "notice"])
def test_each_command_has_canonical_tolerant_and_refused_vectors(command: str) -> None:
    cases = [c for c in load_cases(FILE) if c["command"] == command]
    assert any(c.get("canonical") for c in cases)
    assert any(c["expect"]["ok"] and not c.get("canonical") for c in cases)
    assert {c["expect"]["reason"] for c in cases if not c["expect"]["ok"]} >= {
        "payload_too_large",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
    }


def _item(n: int, start_ms: int = 1000, title: str = "t", by: str | None = None) -> ScheduleItem:
    return ScheduleItem(f"bk-{n}", title, start_ms, start_ms + 60_000, by, False)


def test_encode_schedule_sorts_by_start_keeping_ties_in_order() -> None:
    items = [_item(1, 3000), _item(2, 1000), _item(3, 3000), _item(4, 2000)]
    read = decode_schedule(encode_schedule("R", 1, items))
    assert [i.booking for i in read.items] == ["bk-2", "bk-4", "bk-1", "bk-3"]


@pytest.mark.parametrize(
    ("room", "items", "why"),
    [
        ("", [], "room name"),
        ("R" * 65, [], "room name"),
        ("R", [_item(n) for n in range(25)], "at most 24"),
        ("R", [ScheduleItem("bk-1", "", 5, 5)], "end after"),
        ("R", [ScheduleItem("bk 1", "", 5, 6)], "booking id"),
        ("R", [_item(1, title="x" * 65)], "title"),
        ("R", [_item(1, by="x" * 65)], "organiser"),
        # 24 items of 64 three-byte characters each way: more than 8192 bytes.
        ("R", [_item(n, 1000 + n, "会" * 64, "议" * 64) for n in range(24)], "fewer items"),
    ],
    ids=[
        "empty_room",
        "long_room",
        "25_items",
        "empty_booking",
        "bad_id",
        "long_title",
        "long_organiser",
        "too_many_bytes",
    ],
)
def test_encode_schedule_refuses_what_a_panel_could_not_show_whole(
    room: str, items: list[ScheduleItem], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        encode_schedule(room, 1, items)


def test_a_full_schedule_of_ascii_titles_fits() -> None:
    items = [_item(n, 1000 + n, "x" * 64, "y" * 64) for n in range(24)]
    assert len(encode_schedule("R" * 64, 2**53 - 1, items)) <= MAX_CMD_BYTES


@pytest.mark.parametrize("ts_ms", [-1, 2**53, True])
def test_encode_time_refuses_what_a_device_would_refuse(ts_ms: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.2\^53-1"):
        encode_time(ts_ms)


@pytest.mark.parametrize(
    ("tz_min", "tz_next"),
    [(841, None), (-721, None), (60, (5, 900)), (60, (-1, 120)), (None, (5, 120))],
)
def test_encode_time_refuses_an_offset_a_device_would_ignore(
    tz_min: int | None, tz_next: tuple[int, int] | None
) -> None:
    with pytest.raises(ValueError, match="tz_"):
        encode_time(5, tz_min=tz_min, tz_next=tz_next)
