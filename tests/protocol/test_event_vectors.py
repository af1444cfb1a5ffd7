"""``events_v1.json`` through ``decode_event``/``encode_event``: every vector is one test."""

from __future__ import annotations

import json

import pytest

from devices.protocol import ProtocolError, ReasonCode, decode_event, encode_event, parse_topic
from tests.protocol.support import (
    VECTOR_FILES,
    VECTORS_DIR,
    Case,
    expected_envelope,
    load_cases,
    params,
    payload_of,
)

FILE = "events_v1.json"
MAX_LINE_BYTES = 9216

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


@pytest.mark.parametrize("kind", ["punch", "checkin", "button", "query", "receipt"])
def test_every_kind_has_canonical_and_refused_vectors(kind: str) -> None:
    cases = [c for c in load_cases(FILE) if c["topic"].endswith(f"/evt/{kind}")]
    assert any(c.get("canonical") and c["expect"]["envelope"]["kind"] == kind for c in cases)
    refused_fields = {c["expect"].get("field", "") for c in cases if not c["expect"]["ok"]}
    assert any(f.startswith("body.") for f in refused_fields), refused_fields


def test_every_optional_punch_field_has_a_canonical_vector() -> None:
    """The firmware encodes these fields by hand: each must be pinned to exact bytes."""
    seen: set[str] = set()
    for case in load_cases(FILE):
        if case.get("canonical") and case["expect"]["envelope"]["kind"] == "punch":
            body = case["expect"]["envelope"]["body"]
            for name in ("gps", "photo"):
                for key, value in (body[name] or {}).items():
                    if value is not None:
                        seen.add(f"{name}.{key}")
    assert seen == {
        "gps.lat_e7",
        "gps.lon_e7",
        "gps.acc_m",
        "gps.ts_ms",
        "gps.provider",
        "gps.mock",
        "photo.size_bytes",
        "photo.sha256",
    }


@pytest.mark.parametrize("filename", VECTOR_FILES)
def test_vector_files_are_well_formed(filename: str) -> None:
    cases = load_cases(filename)
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "vector names must be unique"
    for case in cases:
        assert ("payload" in case) != ("payload_hex" in case) or filename == "topics_v1.json"
        assert "append_zeros" not in case or "payload_hex" in case, case["name"]
        assert isinstance(case["expect"]["ok"], bool)
        if not case["expect"]["ok"]:
            ReasonCode(case["expect"]["reason"])
        assert not case.get("canonical") or case["expect"]["ok"], case["name"]


def test_every_vector_file_is_listed() -> None:
    assert sorted(p.name for p in VECTORS_DIR.glob("*.json")) == sorted(VECTOR_FILES)


@pytest.mark.parametrize("filename", VECTOR_FILES)
def test_vector_files_hold_one_case_per_line(filename: str) -> None:
    """A device reads the files a line at a time: 120 KB of events do not fit its heap at once.

    So each case is one line of its own, starting ``{"name": `` and ending ``}`` or ``},``, and
    no line is longer than the firmware test's line buffer (firmware/tests/test_codec.py).
    """
    raw = (VECTORS_DIR / filename).read_bytes().split(b"\n")
    assert max(len(line) for line in raw) <= MAX_LINE_BYTES, filename
    lines = (VECTORS_DIR / filename).read_text(encoding="utf-8").splitlines()
    case_lines = [line.strip() for line in lines if line.strip().startswith('{"name": ')]
    assert len(case_lines) == len(load_cases(filename))
    for line, case in zip(case_lines, load_cases(filename), strict=True):
        assert json.loads(line.removesuffix(",")) == case
