"""``presence_v1.json`` through ``decode_presence``/``encode_presence``."""

from __future__ import annotations

import pytest

from devices.protocol import ProtocolError, ReasonCode, decode_presence, encode_presence
from tests.protocol.support import Case, expected_presence, params, payload_of

FILE = "presence_v1.json"


@pytest.mark.parametrize("case", params(FILE))
def test_presence_vector(case: Case) -> None:
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(ProtocolError) as caught:
            decode_presence(payload_of(case))
        assert caught.value.reason_code == ReasonCode(expect["reason"]), caught.value.message
        assert caught.value.field == expect.get("field"), caught.value.message
        return
    presence = decode_presence(payload_of(case))
    assert presence == expected_presence(expect)
    assert decode_presence(encode_presence(presence)) == presence
    if case.get("canonical"):
        assert encode_presence(presence) == payload_of(case)
