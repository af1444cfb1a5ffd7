"""Property tests: decoders never fail with anything but ProtocolError, and the codec and the
JSON Schemas agree on every payload, not only on the vectors."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.protocol import (
    Ack,
    AckStatus,
    ProtocolError,
    ReasonCode,
    Topic,
    TopicKind,
    Verdict,
    decode_ack,
    decode_event,
    decode_presence,
    encode_ack,
    parse_topic,
)
from devices.protocol.limits import MAX_DEVICE_ID_CHARS, MAX_SAFE_INT
from devices.protocol.topics import valid_id
from tests.protocol.support import validator

# No example database: tests must not leave files in the work tree.
_SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
_TOPIC = Topic("hq", "term-001", TopicKind.EVT, "punch")
_BASE_EVENT: dict[str, Any] = {
    "v": 1,
    "id": "m-000001",
    "dev": "term-001",
    "seq": 1,
    "ts": 1767225600000,
    "kind": "punch",
    "body": {"card": "04A1B2C3"},
}
_DROP = object()

# Values near every boundary the protocol draws, plus arbitrary JSON.
_edge_ints = st.sampled_from([0, 1, -1, MAX_SAFE_INT, MAX_SAFE_INT + 1, 2**64])
_edge_strings = st.sampled_from(
    [
        "punch",
        "card",
        "m1",
        "",
        "a/b",
        "a+b",
        "#",
        "x" * 32,
        "x" * 33,
        "x" * 64,
        "x" * 65,
        "m1\n",
        "-a",
        "_a",
        "é",
        "1",
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | _edge_ints
    | st.integers()
    # Integral floats (1.0) are the one error JSON Schema cannot see; the vectors cover them.
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | _edge_strings
    | st.text(alphabet="Aa0_-/ +#\né", max_size=70)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _mutated(base: dict[str, Any], extra_keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with each field kept, dropped or replaced, and maybe extra fields added."""
    keys = list(base) + extra_keys
    choices = st.tuples(
        *[st.one_of(st.just(base.get(k, _DROP)), st.just(_DROP), _json) for k in keys]
    )
    return choices.map(
        lambda vals: {k: v for k, v in zip(keys, vals, strict=True) if v is not _DROP}
    )


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(_mutated(_BASE_EVENT, ["x"]))
    if draw(st.booleans()):
        event["body"] = draw(_mutated({"card": "04A1B2C3"}, ["emp", "y"]))
    return event


def _topic_for(event: dict[str, Any]) -> Topic:
    # Published where its own dev and kind say, so the topic checks (which a schema cannot
    # make) never decide the outcome.
    dev, kind = event.get("dev"), event.get("kind")
    return Topic(
        "hq",
        dev if isinstance(dev, str) and valid_id(dev, MAX_DEVICE_ID_CHARS) else "term-001",
        TopicKind.EVT,
        kind if isinstance(kind, str) and valid_id(kind, 32) else "punch",
    )


def _codec_accepts(decode: Any, *args: Any) -> bool:
    try:
        decode(*args)
    except ProtocolError:
        return False
    return True


@_SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_error(payload: bytes) -> None:
    for decode in (
        lambda p: decode_event(_TOPIC, p),
        decode_ack,
        decode_presence,
    ):
        _codec_accepts(decode, payload)


@_SETTINGS
@given(st.text(alphabet="tackv1/hqerm-0_+#evtcmdstatepunch é\n", max_size=60))
def test_random_topics_only_raise_protocol_error(value: str) -> None:
    reason: ReasonCode | None = None
    try:
        parsed = parse_topic(value)
    except ProtocolError as exc:
        reason = exc.reason_code
    if reason is None:
        assert str(parsed) == value
    else:
        assert reason is ReasonCode.BAD_TOPIC


@_SETTINGS
@given(_events())
def test_codec_and_schema_agree_on_events(event: dict[str, Any]) -> None:
    payload = json.dumps(event).encode()
    accepted = _codec_accepts(decode_event, _topic_for(event), payload)
    assert accepted == validator("envelope").is_valid(event), payload


@_SETTINGS
@given(_mutated({"v": 1, "online": True, "boot": 3, "fw": "1.4.2", "ts": 0}, ["x"]))
def test_codec_and_schema_agree_on_presence(presence: dict[str, Any]) -> None:
    payload = json.dumps(presence).encode()
    assert _codec_accepts(decode_presence, payload) == validator("presence").is_valid(presence)


_REASON_FOR = {
    AckStatus.ACCEPTED: st.just(ReasonCode.OK),
    AckStatus.DUPLICATE: st.just(ReasonCode.DUPLICATE),
    AckStatus.REJECTED: st.sampled_from(
        [r for r in ReasonCode if r not in (ReasonCode.OK, ReasonCode.DUPLICATE)]
    ),
}


@st.composite
def _acks(draw: st.DrawFn) -> Ack:
    status = draw(st.sampled_from(AckStatus))
    return Ack(
        msg_id=draw(st.none() | st.text(max_size=64)),
        seq=draw(st.none() | st.integers(min_value=0, max_value=2**53 - 1)),
        status=status,
        reason=draw(_REASON_FOR[status]),
        message=draw(st.text(max_size=100)),
        verdict=draw(
            st.none()
            | st.builds(Verdict, ok=st.booleans(), text=st.text(), name=st.none() | st.text())
        ),
        retry_s=draw(st.none() | st.floats(min_value=0, max_value=3600)),
    )


@_SETTINGS
@given(_acks())
def test_every_ack_the_gateway_can_write_validates_and_reads_back(ack: Ack) -> None:
    payload = encode_ack(ack)
    assert validator("ack").is_valid(json.loads(payload)), payload
    assert decode_ack(payload) == ack
