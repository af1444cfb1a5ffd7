"""``frames_v1.json`` through ``decode_frame``/``encode_frame``: every vector is one test."""

from __future__ import annotations

import hashlib

import pytest

from devices.protocol import (
    MAX_FRAME_BYTES,
    ProtocolError,
    ReasonCode,
    decode_frame,
    encode_frame,
    parse_topic,
)
from tests.protocol.support import Case, load_cases, params, payload_of

FILE = "frames_v1.json"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")

DECODE_FRAME_REASONS = frozenset(
    {
        ReasonCode.PAYLOAD_TOO_LARGE,
        ReasonCode.MALFORMED_JSON,
        ReasonCode.NOT_AN_OBJECT,
        ReasonCode.MISSING_FIELD,
        ReasonCode.WRONG_TYPE,
        ReasonCode.INVALID_VALUE,
        ReasonCode.UNSUPPORTED_VERSION,
        ReasonCode.DEVICE_MISMATCH,
        ReasonCode.TOPIC_MISMATCH,
    }
)


@pytest.mark.parametrize("case", params(FILE))
def test_frame_vector(case: Case) -> None:
    topic = parse_topic(case["topic"])
    payload = payload_of(case)
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(ProtocolError) as caught:
            decode_frame(topic, payload)
        assert caught.value.reason_code == ReasonCode(expect["reason"]), caught.value.message
        assert caught.value.field == expect.get("field"), caught.value.message
        return
    frame = decode_frame(topic, payload)
    want = expect["frame"]
    assert (frame.device_id, frame.msg_id, frame.sha256) == (
        want["device_id"],
        want["msg_id"],
        want["sha256"],
    )
    assert len(frame.data) == want["data_len"]
    assert frame.data == payload.split(b"\n", 1)[1]
    assert hashlib.sha256(frame.data).hexdigest() == frame.sha256


@pytest.mark.parametrize("case", [p for p in params(FILE, ok=True) if p.values[0].get("canonical")])
def test_canonical_frame_is_what_encode_frame_writes(case: Case) -> None:
    frame = decode_frame(parse_topic(case["topic"]), payload_of(case))
    assert encode_frame(frame.device_id, frame.msg_id, frame.data) == payload_of(case)


def test_every_decode_reason_has_a_vector() -> None:
    seen = {ReasonCode(c["expect"]["reason"]) for c in load_cases(FILE) if not c["expect"]["ok"]}
    assert seen == DECODE_FRAME_REASONS


@pytest.mark.parametrize(
    ("device_id", "msg_id", "jpeg"),
    [
        ("term-001", "m-1", b""),
        ("term-001", "m-1", b"\x89PNG\r\n\x1a\n"),
        ("term-001", "m-1", b"\xff\xd8" + bytes(MAX_FRAME_BYTES - 1)),
        ("term/001", "m-1", JPEG),
        ("term-001", "", JPEG),
        ("term-001", "m 1", JPEG),
    ],
    ids=["empty", "png", "one_byte_too_big", "bad_device_id", "empty_msg_id", "msg_id_space"],
)
def test_encode_frame_refuses_what_the_gateway_would_refuse(
    device_id: str, msg_id: str, jpeg: bytes
) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        encode_frame(device_id, msg_id, jpeg)
