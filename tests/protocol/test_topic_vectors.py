"""``topics_v1.json`` through ``parse_topic`` and ``topic``."""

from __future__ import annotations

import pytest

from devices.protocol import ProtocolError, ReasonCode, Topic, TopicKind, parse_topic, topic
from tests.protocol.support import Case, params

FILE = "topics_v1.json"


@pytest.mark.parametrize("case", params(FILE))
def test_topic_vector(case: Case) -> None:
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(ProtocolError) as caught:
            parse_topic(case["topic"])
        assert caught.value.reason_code == ReasonCode(expect["reason"])
        return
    parsed = parse_topic(case["topic"])
    assert parsed == Topic(
        expect["site"], expect["device_id"], TopicKind(expect["kind"]), expect["name"]
    )
    assert str(parsed) == case["topic"]
    assert topic(parsed.site, parsed.device_id, parsed.kind, parsed.name) == case["topic"]
