"""``acks_v1.json``: what the gateway writes (``encode_ack``) and how a device reads it."""

from __future__ import annotations

import pytest

from devices.protocol import ProtocolError, ReasonCode, decode_ack, encode_ack
from tests.protocol.support import Case, expected_ack, outbox_action, params, payload_of

FILE = "acks_v1.json"


@pytest.mark.parametrize("case", params(FILE))
def test_ack_vector_decodes(case: Case) -> None:
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(ProtocolError) as caught:
            decode_ack(payload_of(case))
        assert caught.value.reason_code == ReasonCode(expect["reason"]), caught.value.message
        assert caught.value.field == expect.get("field"), caught.value.message
        return
    ack = decode_ack(payload_of(case))
    assert ack == expected_ack(expect)
    assert outbox_action(ack) == expect["outbox"]


@pytest.mark.parametrize("case", [p for p in params(FILE, ok=True) if p.values[0].get("canonical")])
def test_canonical_ack_is_what_encode_ack_writes(case: Case) -> None:
    assert encode_ack(expected_ack(case["expect"])) == payload_of(case)
