"""Property tests: decoders never fail with anything but ProtocolError, and the codec and the
JSON Schemas agree on every payload, not only on the vectors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.protocol import (
    MAX_CMD_BYTES,
    Ack,
    AckStatus,
    ProtocolError,
    ReasonCode,
    Schedule,
    ScheduleItem,
    Topic,
    TopicKind,
    Verdict,
    decode_ack,
    decode_event,
    decode_frame,
    decode_presence,
    decode_schedule,
    decode_time,
    dumps,
    encode_ack,
    encode_frame,
    encode_schedule,
    parse_topic,
)
from devices.protocol.limits import (
    MAX_DEVICE_ID_CHARS,
    MAX_FRAME_BYTES,
    MAX_SAFE_INT,
    MAX_SCHEDULE_ITEMS,
)
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
_FRAME_TOPIC = Topic("hq", "term-001", TopicKind.EVT, "frame")
_JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
_SHA = hashlib.sha256(_JPEG).hexdigest()
_BODIES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "punch": ({"card": "04A1B2C3", "gps": {}, "photo": {}}, ["emp", "y"]),
    "checkin": ({"booking": "bk-1"}, ["y"]),
    "button": ({"button": "extend", "booking": "bk-1", "minutes": 15}, ["y"]),
    "query": ({"card": "04A1B2C3", "q": "leave"}, ["emp", "y"]),
    "receipt": ({"notice": "n-1", "by": "04A1B2C3"}, ["y"]),
}
_GPS: dict[str, Any] = {
    "lat": 312304000,
    "lon": -1214737000,
    "acc": 12,
    "ts": 1767225600000,
    "prov": "fused",
    "mock": False,
}
_PHOTO: dict[str, Any] = {"len": 22, "sha256": _SHA}

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
    # The edges of the panel's and the gps fields' ranges.
    | st.sampled_from([480, 481, 65536, 65537, 900_000_001, -1_800_000_001, 100_001, _SHA])
    | st.sampled_from(["checkin", "button", "book", "snooze", _SHA.upper(), "bk-1", "leave"])
    | st.sampled_from(["gps", "Gps", "gps\n", "a" * 16, "a" * 17, "9g", "wi-fi"])
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
    kind = draw(st.sampled_from(sorted(_BODIES)))
    event = draw(_mutated({**_BASE_EVENT, "kind": kind}, ["x"]))
    if draw(st.booleans()):
        base, extra = _BODIES[kind]
        body = draw(_mutated(base, extra))
        # Punch's optional objects: each field kept, dropped or replaced, like the envelope's.
        if isinstance(body.get("gps"), dict):
            body["gps"] = draw(_mutated(_GPS, ["alt"]))
        if isinstance(body.get("photo"), dict):
            body["photo"] = draw(_mutated(_PHOTO, ["mime"]))
        event["body"] = body
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
        lambda p: decode_frame(_FRAME_TOPIC, p),
        decode_ack,
        decode_presence,
        decode_time,
        decode_schedule,
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


@_SETTINGS
@given(_mutated({"v": 1, "id": "m-1", "dev": "term-001", "len": 22, "sha256": _SHA}, ["x"]))
def test_codec_and_schema_agree_on_frame_headers(header: dict[str, Any]) -> None:
    """The header decides, given a JPEG its len and sha256 describe; dev matches the topic."""
    payload = json.dumps(header).encode() + b"\n" + _JPEG
    dev = header.get("dev")
    valid_dev = isinstance(dev, str) and valid_id(dev, MAX_DEVICE_ID_CHARS)
    topic = Topic("hq", dev if valid_dev else "term-001", TopicKind.EVT, "frame")
    describes_jpeg = header.get("len") == len(_JPEG) and header.get("sha256") == _SHA
    accepted = _codec_accepts(decode_frame, topic, payload)
    assert accepted == (validator("frame").is_valid(header) and describes_jpeg), payload


@_SETTINGS
@given(st.binary(max_size=MAX_FRAME_BYTES - 2), st.sampled_from(["m-1", "M" * 64]))
def test_every_frame_encode_frame_writes_reads_back(tail: bytes, msg_id: str) -> None:
    jpeg = b"\xff\xd8" + tail
    payload = encode_frame("term-001", msg_id, jpeg)
    frame = decode_frame(_FRAME_TOPIC, payload)
    assert (frame.msg_id, frame.data) == (msg_id, jpeg)
    assert validator("frame").is_valid(json.loads(payload.split(b"\n", 1)[0]))


@_SETTINGS
@given(_mutated({"v": 1, "ts": 1767225600000}, ["x"]))
def test_codec_and_schema_agree_on_time(command: dict[str, Any]) -> None:
    """A device reads only ts: it accepts what the schema accepts, whatever v says."""
    payload = json.dumps(command).encode()
    assert _codec_accepts(decode_time, payload) == validator("time").is_valid({**command, "v": 1})


_items = st.builds(
    ScheduleItem,
    booking=st.sampled_from(["bk-1", "bk-2", "B" * 64, "0"]),
    title=st.text(max_size=64),
    start_ms=st.integers(min_value=0, max_value=10_000),
    end_ms=st.integers(min_value=10_001, max_value=MAX_SAFE_INT),
    organiser=st.none() | st.text(max_size=64),
    checked_in=st.booleans(),
)


@_SETTINGS
@given(
    st.text(min_size=1, max_size=64),
    st.integers(min_value=0, max_value=MAX_SAFE_INT),
    st.lists(_items, max_size=MAX_SCHEDULE_ITEMS),
)
def test_every_schedule_the_gateway_can_write_validates_and_reads_back(
    room: str, ts_ms: int, items: list[ScheduleItem]
) -> None:
    try:
        payload = encode_schedule(room, ts_ms, items)
    except ValueError:
        # Only for size: 24 items of 64 non-ASCII characters can pass 8192 bytes.
        whole = Schedule(room, ts_ms, tuple(items)).to_wire()
        assert len(dumps(whole)) > MAX_CMD_BYTES
        return
    assert validator("schedule").is_valid(json.loads(payload)), payload
    read = decode_schedule(payload)
    assert (read.room, read.ts_ms, read.dropped) == (room, ts_ms, 0)
    assert list(read.items) == sorted(items, key=lambda i: i.start_ms)


_ITEM: dict[str, Any] = {"id": "bk-1", "title": "t", "start": 1, "end": 2, "by": None, "in": True}


@_SETTINGS
@given(
    _mutated({"v": 1, "room": "R", "ts": 1}, ["x"]),
    st.lists(_mutated(_ITEM, ["x"]) | _json, max_size=30),
)
def test_a_panel_reads_any_schedule_into_one_it_can_show(
    schedule: dict[str, Any], items: list[Any]
) -> None:
    """Whatever the items hold, a panel gets readable items in order of start, and a count of
    the ones it dropped: never an exception other than ProtocolError for a missing list."""
    read = decode_schedule(json.dumps({**schedule, "items": items}).encode())
    assert len(read.items) + read.dropped == len(items)
    assert len(read.items) <= MAX_SCHEDULE_ITEMS
    assert [i.start_ms for i in read.items] == sorted(i.start_ms for i in read.items)
    for item in read.items:
        assert valid_id(item.booking, 64)
        assert 0 <= item.start_ms < item.end_ms <= MAX_SAFE_INT
