"""docs/protocol.md says what the code says: the reason table word for word, the topics, the
limits, the vector and schema files, and the example exchange byte for byte."""

from __future__ import annotations

import json
import re

import pytest

import devices.protocol.limits as limits
from devices.protocol import (
    BODY_DECODERS,
    MEANINGS,
    ButtonAction,
    ReasonCode,
    Topic,
    TopicKind,
    decode_ack,
    decode_event,
    decode_presence,
    decode_schedule,
    decode_time,
    encode_ack,
    encode_event,
    encode_presence,
    encode_schedule,
    encode_time,
)
from tests.protocol.support import DOCS_PATH, SCHEMAS_DIR, VECTOR_FILES, validator

_ROW = re.compile(r"^\|\s*`(?P<code>[a-z_]+)`\s*\|(?P<meaning>[^|]*)\|(?P<transient>[^|]*)\|")


def _section(number: int) -> str:
    text = DOCS_PATH.read_text(encoding="utf-8")
    return re.split(rf"\n## {number}\. [^\n]*\n", text, maxsplit=1)[1].split("\n## ", 1)[0]


def _reason_table() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in _section(7).splitlines():
        match = _ROW.match(line)
        if match:
            assert match["code"] not in rows, f"{match['code']} is listed twice"
            rows[match["code"]] = (match["meaning"].strip(), match["transient"].strip())
    return rows


def test_every_reason_code_is_in_the_table_and_nothing_else() -> None:
    assert sorted(_reason_table()) == sorted(str(r) for r in ReasonCode)


@pytest.mark.parametrize("reason", list(ReasonCode), ids=str)
def test_reason_row_matches_the_code(reason: ReasonCode) -> None:
    meaning, transient = _reason_table()[str(reason)]
    assert meaning == MEANINGS[reason]
    assert transient == ("yes" if reason.transient else "no")


def test_topics_table_lists_every_topic_of_the_protocol() -> None:
    listed = re.findall(r"^\| `tack/v1/\{site\}/\{device_id\}/(\w+/\w+)` \|", _section(1), re.M)
    events = {f"evt/{kind}" for kind in BODY_DECODERS}
    assert sorted(listed) == sorted(
        events | {"evt/frame", "cmd/ack", "cmd/time", "cmd/schedule", "cmd/notice", "state/online"}
    )


def test_size_limits_name_the_constants_with_their_values() -> None:
    section = _section(2)
    named = re.findall(r"(\d+) bytes \(`(MAX_\w+)`\)", section)
    assert {name for _, name in named} == {
        "MAX_EVT_BYTES",
        "MAX_FRAME_PAYLOAD_BYTES",
        "MAX_FRAME_HEADER_BYTES",
        "MAX_FRAME_BYTES",
        "MAX_STATE_BYTES",
        "MAX_CMD_BYTES",
    }
    for value, name in named:
        assert getattr(limits, name) == int(value), name


def test_button_table_lists_every_button() -> None:
    row = next(line for line in _section(4).splitlines() if line.startswith("| `button` |"))
    assert re.findall(r"`(\w+)`", row.split("|")[3]) == [str(b) for b in ButtonAction]


def test_vector_and_schema_files_are_all_listed() -> None:
    section = _section(8)
    assert sorted(set(re.findall(r"`(\w+_v1\.json)`", section))) == sorted(VECTOR_FILES)
    schemas = sorted(p.name for p in SCHEMAS_DIR.glob("*.schema.json"))
    assert sorted(set(re.findall(r"`(\w+\.schema\.json)`", section))) == schemas


def _example_messages() -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", _section(9), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("{")]
    # Strip the "(last will)" notes that follow some messages.
    return [re.sub(r"\}\s+\(.*\)$", "}", line) for line in lines]


@pytest.mark.parametrize("line", _example_messages())
def test_example_message_is_canonical(line: str) -> None:
    """Each message in the example exchange is exactly what the encoder writes for it."""
    payload = line.encode()
    data = json.loads(payload)
    if "kind" in data:
        topic = Topic("hq", data["dev"], TopicKind.EVT, data["kind"])
        assert encode_event(decode_event(topic, payload)) == payload
    elif "status" in data:
        assert encode_ack(decode_ack(payload)) == payload
    elif "online" in data:
        assert encode_presence(decode_presence(payload)) == payload
    elif "items" in data:
        schedule = decode_schedule(payload)
        assert schedule.ts_ms is not None
        assert encode_schedule(schedule.room, schedule.ts_ms, schedule.items) == payload
    elif "sha256" in data:
        assert validator("frame").is_valid(data)
    else:
        assert encode_time(decode_time(payload)) == payload


def test_example_covers_every_kind_of_message() -> None:
    keys = [set(json.loads(line)) for line in _example_messages()]
    assert any("kind" in k for k in keys)
    assert any("status" in k for k in keys)
    assert any("online" in k for k in keys)
    assert any("items" in k for k in keys)
    assert any("sha256" in k for k in keys)
    assert any(k == {"v", "ts"} for k in keys)
