"""``events_v1.json`` through ``decode_event``/``encode_event``: every vector is one test."""

from __future__ import annotations

import pytest

from devices.protocol import ProtocolError, ReasonCode, decode_event, encode_event, parse_topic
from tests.protocol.support import (
    Case,
    expected_envelope,
    load_cases,
    params,
    payload_of,
)

FILE = "events_v1.json"

# Every reason decode_event can raise (parse_topic's bad_topic has its own file).
DECODE_EVENT_REASONS = frozenset(
    {
        ReasonCode.MALFORMED_JSON,
        ReasonCode.NOT_AN_OBJECT,
        ReasonCode.MISSING_FIELD,
        ReasonCode.WRONG_TYPE,
        ReasonCode.INVALID_VALUE,
        ReasonCode.UNSUPPORTED_VERSION,
        ReasonCode.PAYLOAD_TOO_LARGE,
        ReasonCode.UNKNOWN_KIND,
        ReasonCode.DEVICE_MISMATCH,
        ReasonCode.TOPIC_MISMATCH,
    }
)


@pytest.mark.parametrize("case", params(FILE))
def test_event_vector(case: Case) -> None:
    topic = parse_topic(case["topic"])
    expect = case["expect"]
    if expect["ok"]:
        assert decode_event(topic, payload_of(case)) == expected_envelope(expect)
        return
    with pytest.raises(ProtocolError) as caught:
        decode_event(topic, payload_of(case))
    assert caught.value.reason_code == ReasonCode(expect["reason"]), caught.value.message
    assert caught.value.field == expect.get("field"), caught.value.message


@pytest.mark.parametrize("case", params(FILE, ok=True))
def test_event_round_trip(case: Case) -> None:
    topic = parse_topic(case["topic"])
    envelope = decode_event(topic, payload_of(case))
    encoded = encode_event(envelope)
    assert decode_event(topic, encoded) == envelope
    if case.get("canonical"):
        assert encoded == payload_of(case)


def test_every_decode_reason_has_a_vector() -> None:
    seen = {ReasonCode(c["expect"]["reason"]) for c in load_cases(FILE) if not c["expect"]["ok"]}
    assert seen == DECODE_EVENT_REASONS


@pytest.mark.parametrize(
    "filename", ["events_v1.json", "topics_v1.json", "acks_v1.json", "presence_v1.json"]
)
def test_vector_files_are_well_formed(filename: str) -> None:
    cases = load_cases(filename)
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "vector names must be unique"
    for case in cases:
        assert ("payload" in case) != ("payload_hex" in case) or filename == "topics_v1.json"
        assert isinstance(case["expect"]["ok"], bool)
        if not case["expect"]["ok"]:
            ReasonCode(case["expect"]["reason"])
        assert not case.get("canonical") or case["expect"]["ok"], case["name"]
