"""The JSON Schemas agree with the codec: what it accepts validates, what it refuses for a
reason visible in the payload alone does not. Vectors marked ``schema_valid`` are the few
errors JSON Schema cannot see (an integer written as ``1.0``), and must validate."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devices.protocol import BODY_DECODERS, ButtonAction, ReasonCode
from devices.protocol.codec import _SHA256_RE
from devices.protocol.limits import (
    MAX_BOOKING_CHARS,
    MAX_BUTTON_MINUTES,
    MAX_CREDENTIAL_CHARS,
    MAX_DEVICE_ID_CHARS,
    MAX_FRAME_BYTES,
    MAX_GPS_ACC_M,
    MAX_GPS_PROVIDER_CHARS,
    MAX_ID_CHARS,
    MAX_LAT_E7,
    MAX_LON_E7,
    MAX_ORGANISER_CHARS,
    MAX_ROOM_CHARS,
    MAX_SAFE_INT,
    MAX_SCHEDULE_ITEMS,
    MAX_TITLE_CHARS,
    PROTOCOL_VERSION,
)
from devices.protocol.topics import _NAME_RE
from tests.protocol.support import (
    SCHEMA_NAMES,
    SCHEMA_VISIBLE_REASONS,
    Case,
    frame_header_of,
    json_of,
    load_schema,
    params,
    validator,
)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_limits_match_the_codec() -> None:
    defs = load_schema("envelope")["$defs"]
    assert defs["msg_id"]["maxLength"] == MAX_ID_CHARS
    assert defs["device_id"]["maxLength"] == MAX_DEVICE_ID_CHARS
    assert load_schema("punch")["$defs"]["credential"]["maxLength"] == MAX_CREDENTIAL_CHARS
    assert defs["uint53"]["maximum"] == MAX_SAFE_INT
    assert defs["uint53"]["minimum"] == 0
    for name in ("envelope", "ack", "presence", "frame", "time", "schedule"):
        assert load_schema(name)["properties"]["v"]["const"] == PROTOCOL_VERSION


def test_new_field_limits_match_the_codec() -> None:
    punch = load_schema("punch")["$defs"]
    gps, photo = punch["gps"]["properties"], punch["photo"]["properties"]
    assert (gps["lat"]["minimum"], gps["lat"]["maximum"]) == (-MAX_LAT_E7, MAX_LAT_E7)
    assert (gps["lon"]["minimum"], gps["lon"]["maximum"]) == (-MAX_LON_E7, MAX_LON_E7)
    assert (gps["acc"]["minimum"], gps["acc"]["maximum"]) == (0, MAX_GPS_ACC_M)
    assert f"{{0,{MAX_GPS_PROVIDER_CHARS - 1}}}" in gps["prov"]["pattern"]
    assert (photo["len"]["minimum"], photo["len"]["maximum"]) == (1, MAX_FRAME_BYTES)
    frame = load_schema("frame")["properties"]
    assert (frame["len"]["minimum"], frame["len"]["maximum"]) == (1, MAX_FRAME_BYTES)
    assert load_schema("envelope")["$defs"]["booking_id"]["maxLength"] == MAX_BOOKING_CHARS
    minutes = load_schema("button")["properties"]["minutes"]
    assert (minutes["minimum"], minutes["maximum"]) == (1, MAX_BUTTON_MINUTES)
    schedule = load_schema("schedule")
    assert schedule["properties"]["room"]["maxLength"] == MAX_ROOM_CHARS
    assert schedule["properties"]["items"]["maxItems"] == MAX_SCHEDULE_ITEMS
    item = schedule["$defs"]["item"]["properties"]
    assert item["title"]["maxLength"] == MAX_TITLE_CHARS
    assert item["by"]["oneOf"][0]["maxLength"] == MAX_ORGANISER_CHARS


def test_kind_and_button_enums_match_the_codec() -> None:
    envelope = load_schema("envelope")
    assert envelope["properties"]["kind"]["enum"] == list(BODY_DECODERS)
    refs = {
        rule["if"]["properties"]["kind"]["const"]: rule["then"]["properties"]["body"]["$ref"]
        for rule in envelope["allOf"]
    }
    assert refs == {kind: f"{kind}.schema.json" for kind in BODY_DECODERS}
    assert load_schema("button")["properties"]["button"]["enum"] == [str(b) for b in ButtonAction]


@pytest.mark.parametrize(
    "value", ["a" * 64, "0" * 64, "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 64 + "\n", ""]
)
def test_sha256_pattern_matches_the_codec(value: str) -> None:
    is_digest = validator("envelope").evolve(schema=load_schema("envelope")["$defs"]["sha256"])
    assert is_digest.is_valid(value) == (_SHA256_RE.match(value) is not None)


@pytest.mark.parametrize(
    "value", ["a", "A-_9", "x" * 100, "", "-a", "_a", "a/b", "a b", "a\n", "\na", "é", "a+"]
)
def test_name_pattern_matches_the_codec(value: str) -> None:
    """Python's re (used by jsonschema) and the codec's regex agree, newline trap included."""
    is_name = validator("envelope").evolve(schema=load_schema("envelope")["$defs"]["name"])
    assert is_name.is_valid(value) == (_NAME_RE.match(value) is not None)


def test_ack_reason_enum_lists_every_reason_code() -> None:
    assert load_schema("ack")["properties"]["reason"]["enum"] == [str(r) for r in ReasonCode]


def _check(schema: str, case: Case, instance: Any = None) -> None:
    expect = case["expect"]
    errors = list(validator(schema).iter_errors(json_of(case) if instance is None else instance))
    if expect["ok"] or case.get("schema_valid"):
        assert not errors, [e.message for e in errors]
    elif ReasonCode(expect["reason"]) in SCHEMA_VISIBLE_REASONS:
        assert errors, f"the schema accepts a payload the codec refuses ({expect['reason']})"


def _parseable(filename: str) -> list[Any]:
    """Cases whose payload is JSON at all: the others are not a schema's business."""
    return [
        p
        for p in params(filename)
        if p.values[0]["expect"].get("reason") not in ("malformed_json", "payload_too_large")
    ]


@pytest.mark.parametrize("case", _parseable("events_v1.json"))
def test_event_vector_against_schema(case: Case) -> None:
    _check("envelope", case)


@pytest.mark.parametrize("case", _parseable("presence_v1.json"))
def test_presence_vector_against_schema(case: Case) -> None:
    _check("presence", case)


@pytest.mark.parametrize(
    "case", [p for p in params("acks_v1.json", ok=True) if p.values[0].get("canonical")]
)
def test_gateway_ack_validates(case: Case) -> None:
    errors = list(validator("ack").iter_errors(json_of(case)))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("case", _parseable("frames_v1.json"))
def test_frame_header_vector_against_schema(case: Case) -> None:
    _check("frame", case, frame_header_of(case))


@pytest.mark.parametrize(
    "case",
    # The gateway's commands validate; a device's tolerant readings need not (it reads more
    # than the gateway writes), but what the device refuses the schema refuses too.
    [
        p
        for p in _parseable("commands_v1.json")
        if p.values[0].get("canonical") or not p.values[0]["expect"]["ok"]
    ],
)
def test_command_vector_against_schema(case: Case) -> None:
    _check(case["command"], case)
