"""Encode and decode protocol v1 messages (compact JSON).

Decoding checks, in this order: size, UTF-8 JSON, object, version, the envelope fields in wire
order (each present, then of its type, then in range: ``id``, ``dev``, ``seq``, ``ts``, then
``kind`` and ``body`` present and typed), a known kind, the device id against the topic, the
kind against the topic, and last the body's own fields. The first failure raises
:class:`ProtocolError` with the reason code the shared test vectors expect, so every
implementation reports the same code for the same bytes.

Camera frames (``evt/frame``) are the one payload that is not a JSON object: a JSON header
line, a newline, then the JPEG. Commands to a device (``cmd/time``, ``cmd/schedule``) are read
tolerantly, as acks are, so a newer gateway's command still reaches an older device.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from devices.protocol.errors import ProtocolError
from devices.protocol.limits import (
    MAX_BOOKING_CHARS,
    MAX_BUTTON_MINUTES,
    MAX_CMD_BYTES,
    MAX_CREDENTIAL_CHARS,
    MAX_DEVICE_ID_CHARS,
    MAX_EVT_BYTES,
    MAX_FRAME_BYTES,
    MAX_FRAME_HEADER_BYTES,
    MAX_FRAME_PAYLOAD_BYTES,
    MAX_GPS_ACC_M,
    MAX_GPS_PROVIDER_CHARS,
    MAX_ID_CHARS,
    MAX_LAT_E7,
    MAX_LON_E7,
    MAX_NOTICE_ID_CHARS,
    MAX_ORGANISER_CHARS,
    MAX_ROOM_CHARS,
    MAX_ROOM_RULE_MIN,
    MAX_SAFE_INT,
    MAX_SCHEDULE_ITEMS,
    MAX_STATE_BYTES,
    MAX_TITLE_CHARS,
    MAX_TZ_MIN,
    MIN_TZ_MIN,
    PROTOCOL_VERSION,
)
from devices.protocol.messages import (
    SCHEDULE_STATES,
    Ack,
    AckStatus,
    Body,
    ButtonAction,
    ButtonBody,
    CheckinBody,
    CredentialType,
    Envelope,
    Frame,
    GpsFix,
    PhotoRef,
    Presence,
    PunchBody,
    QueryBody,
    QueryTopic,
    ReceiptBody,
    Schedule,
    ScheduleItem,
    Verdict,
)
from devices.protocol.reasons import ReasonCode
from devices.protocol.topics import Topic, TopicKind, valid_id

_SEPARATORS = (",", ":")


def dumps(obj: dict[str, Any]) -> bytes:
    """Compact, UTF-8 JSON: what goes on the wire."""
    return json.dumps(obj, separators=_SEPARATORS, ensure_ascii=False).encode()


# An integer literal this long is outside every range the protocol allows (2**53 - 1 has 16
# digits). CPython refuses integers of more than 4300 digits with a ValueError that would read
# as malformed JSON where any other parser sees a number; clamping keeps the verdict
# (invalid_value, or an ignored unknown field) the same in every implementation.
_MAX_INT_LITERAL_CHARS = 32


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_LITERAL_CHARS:
        return -(MAX_SAFE_INT + 1) if text.startswith("-") else MAX_SAFE_INT + 1
    return int(text)


def _refuse_constant(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON, but CPython's parser accepts them by default.
    raise ValueError(f"{name} is not a JSON value")


# Built once: json.loads with hooks would build a new decoder for every message.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_refuse_constant)
_CREDENTIAL_TYPES = tuple(CredentialType)
_BUTTONS = frozenset(b.value for b in ButtonAction)
_QUERIES = frozenset(q.value for q in QueryTopic)
_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
_PROVIDER_RE = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_GPS_PROVIDER_CHARS - 1}}}\Z")
_JPEG_MAGIC = b"\xff\xd8"


def _load_object(payload: bytes, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise ProtocolError(
            ReasonCode.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes; the limit is {limit}",
        )
    try:
        data = _DECODER.decode(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(ReasonCode.MALFORMED_JSON, f"payload is not UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        # A few kilobytes of "[" nest deeper than the parser's stack. No v1 message nests more
        # than two levels, so this is refused like any other unreadable payload rather than
        # escaping as a non-protocol error (which would leave the message unanswered for ever).
        raise ProtocolError(ReasonCode.MALFORMED_JSON, "payload nests too deeply") from exc
    if not isinstance(data, dict):
        raise ProtocolError(
            ReasonCode.NOT_AN_OBJECT, f"payload is a JSON {type(data).__name__}, not an object"
        )
    return data


def _require(data: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    if name not in data:
        raise ProtocolError(
            ReasonCode.MISSING_FIELD, f"{where}field {name!r} is required", field=where + name
        )
    value = data[name]
    # bool is an int in Python, never in the protocol.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            ReasonCode.WRONG_TYPE,
            f"{where}field {name!r} must be a {_TYPE_NAMES[kind]}, got {_json_type(value)}",
            field=where + name,
        )
    return value


_TYPE_NAMES = {int: "integer", str: "string", dict: "object", bool: "boolean", list: "array"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_int(name: str, value: int) -> int:
    if not 0 <= value <= MAX_SAFE_INT:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE, f"field {name!r} must be 0..2^53-1, got {value}", field=name
        )
    return value


def _check_range(name: str, value: int, low: int, high: int, where: str = "") -> int:
    if not low <= value <= high:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"{where}field {name!r} must be {low}..{high}, got {value}",
            field=where + name,
        )
    return value


def _check_sha256(name: str, value: str, where: str = "") -> str:
    if _SHA256_RE.match(value) is None:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"{where}field {name!r} must be 64 lower-case hex digits, got {value[:80]!r}",
            field=where + name,
        )
    return value


def _check_version(data: dict[str, Any], what: str) -> None:
    version = _require(data, "v", int)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ReasonCode.UNSUPPORTED_VERSION,
            f"{what} version {version} is not supported; this gateway speaks {PROTOCOL_VERSION}",
            field="v",
        )


def _check_id(name: str, value: str, limit: int, where: str = "") -> str:
    if not valid_id(value, limit):
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"{where}field {name!r} must be 1-{limit} of A-Z a-z 0-9 _ -, got {value[:80]!r}",
            field=where + name,
        )
    return value


def _credential(body: dict[str, Any], what: str) -> tuple[CredentialType, str]:
    """Exactly one of ``card`` and ``emp``, checked alike for every kind that carries one, so a
    terminal's punch and query are refused for the same reasons."""
    present = [t for t in _CREDENTIAL_TYPES if t.value in body]
    if not present:
        raise ProtocolError(
            ReasonCode.MISSING_FIELD,
            f"body: a {what} needs 'card' (card number) or 'emp' (employee number)",
            field="body.card",
        )
    if len(present) > 1:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"body: a {what} carries exactly one of 'card' and 'emp', not both",
            field="body",
        )
    ctype = present[0]
    value = _require(body, ctype.value, str, "body.")
    _check_id(ctype.value, value, MAX_CREDENTIAL_CHARS, "body.")
    return ctype, value


def _punch_body(body: dict[str, Any]) -> PunchBody:
    ctype, value = _credential(body, "punch")
    gps = _gps(_require(body, "gps", dict, "body.")) if "gps" in body else None
    photo = _photo(_require(body, "photo", dict, "body.")) if "photo" in body else None
    return PunchBody(credential_type=ctype, credential=value, gps=gps, photo=photo)


def _query_body(body: dict[str, Any]) -> QueryBody:
    ctype, value = _credential(body, "query")
    q = _require(body, "q", str, "body.")
    if q not in _QUERIES:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"body field 'q' must be one of {sorted(_QUERIES)}, got {q[:40]!r}",
            field="body.q",
        )
    return QueryBody(credential_type=ctype, credential=value, q=QueryTopic(q))


def _gps(gps: dict[str, Any]) -> GpsFix:
    where = "body.gps."
    lat = _check_range("lat", _require(gps, "lat", int, where), -MAX_LAT_E7, MAX_LAT_E7, where)
    lon = _check_range("lon", _require(gps, "lon", int, where), -MAX_LON_E7, MAX_LON_E7, where)
    acc = (
        _check_range("acc", _require(gps, "acc", int, where), 0, MAX_GPS_ACC_M, where)
        if "acc" in gps
        else None
    )
    ts = (
        _check_range("ts", _require(gps, "ts", int, where), 0, MAX_SAFE_INT, where)
        if "ts" in gps
        else None
    )
    provider = None
    if "prov" in gps:
        provider = _require(gps, "prov", str, where)
        if _PROVIDER_RE.match(provider) is None:
            raise ProtocolError(
                ReasonCode.INVALID_VALUE,
                f"{where}field 'prov' must be 1-{MAX_GPS_PROVIDER_CHARS} of a-z 0-9 _, "
                f"starting with a letter, got {provider[:80]!r}",
                field=where + "prov",
            )
    mock = _require(gps, "mock", bool, where) if "mock" in gps else None
    return GpsFix(lat_e7=lat, lon_e7=lon, acc_m=acc, ts_ms=ts, provider=provider, mock=mock)


def _photo(photo: dict[str, Any]) -> PhotoRef:
    where = "body.photo."
    size = _check_range("len", _require(photo, "len", int, where), 1, MAX_FRAME_BYTES, where)
    digest = _check_sha256("sha256", _require(photo, "sha256", str, where), where)
    return PhotoRef(size_bytes=size, sha256=digest)


def _checkin_body(body: dict[str, Any]) -> CheckinBody:
    booking = _require(body, "booking", str, "body.")
    return CheckinBody(booking=_check_id("booking", booking, MAX_BOOKING_CHARS, "body."))


def _button_body(body: dict[str, Any]) -> ButtonBody:
    button = _require(body, "button", str, "body.")
    if button not in _BUTTONS:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"body field 'button' must be one of {sorted(_BUTTONS)}, got {button[:40]!r}",
            field="body.button",
        )
    booking = (
        _check_id("booking", _require(body, "booking", str, "body."), MAX_BOOKING_CHARS, "body.")
        if "booking" in body
        else None
    )
    minutes = (
        _check_range(
            "minutes", _require(body, "minutes", int, "body."), 1, MAX_BUTTON_MINUTES, "body."
        )
        if "minutes" in body
        else None
    )
    return ButtonBody(button=ButtonAction(button), booking=booking, minutes=minutes)


def _receipt_body(body: dict[str, Any]) -> ReceiptBody:
    """``notice`` (the id ``cmd/notice`` gave), then the optional ``by`` (a credential)."""
    notice = _require(body, "notice", str, "body.")
    _check_id("notice", notice, MAX_NOTICE_ID_CHARS, "body.")
    by = (
        _check_id("by", _require(body, "by", str, "body."), MAX_CREDENTIAL_CHARS, "body.")
        if "by" in body
        else None
    )
    return ReceiptBody(notice=notice, by=by)


BODY_DECODERS: dict[str, Callable[[dict[str, Any]], Body]] = {
    "punch": _punch_body,
    "checkin": _checkin_body,
    "button": _button_body,
    "query": _query_body,
    "receipt": _receipt_body,
}
"""Event kinds of protocol v1 and the decoder of each one's body."""


def decode_event(topic: Topic, payload: bytes) -> Envelope:
    """Decode an ``evt`` message received on ``topic``."""
    data = _load_object(payload, MAX_EVT_BYTES)
    _check_version(data, "protocol")
    msg_id = _check_id("id", _require(data, "id", str), MAX_ID_CHARS)
    device_id = _check_id("dev", _require(data, "dev", str), MAX_DEVICE_ID_CHARS)
    seq = _check_int("seq", _require(data, "seq", int))
    ts_ms = _check_int("ts", _require(data, "ts", int))
    kind = _require(data, "kind", str)
    body = _require(data, "body", dict)
    decoder = BODY_DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(
            ReasonCode.UNKNOWN_KIND,
            f"kind {kind[:40]!r} is not an event of protocol v1 (known: {sorted(BODY_DECODERS)})",
            field="kind",
        )
    if device_id != topic.device_id:
        raise ProtocolError(
            ReasonCode.DEVICE_MISMATCH,
            f"envelope says device {device_id!r} but was published on {topic.device_id!r}'s topic",
            field="dev",
        )
    if topic.kind is not TopicKind.EVT or kind != topic.name:
        raise ProtocolError(
            ReasonCode.TOPIC_MISMATCH,
            f"a {kind!r} event must be published on .../evt/{kind}, not on {topic}",
            field="kind",
        )
    return Envelope(
        device_id=device_id,
        msg_id=msg_id,
        seq=seq,
        device_ts_ms=ts_ms,
        kind=kind,
        body=decoder(body),
    )


def encode_event(envelope: Envelope) -> bytes:
    return dumps(envelope.to_wire())


def encode_ack(ack: Ack) -> bytes:
    return dumps(ack.to_wire())


def decode_ack(payload: bytes) -> Ack:
    """Decode a ``cmd/ack``; used by device simulators and tests.

    Only ``status`` is required. Everything else is read tolerantly so an ack from a newer
    gateway still settles the outbox: an unknown or missing reason reads as ``internal_error``
    (transient, so the device keeps the message rather than lose it), and a field of the wrong
    type reads as absent.
    """
    data = _load_object(payload, MAX_EVT_BYTES)
    raw_status = _require(data, "status", str)
    try:
        status = AckStatus(raw_status)
    except ValueError as exc:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"field 'status' must be accepted, duplicate or rejected, got {raw_status[:40]!r}",
            field="status",
        ) from exc
    reason = ReasonCode.parse(data.get("reason")) or ReasonCode.INTERNAL_ERROR
    msg_id, seq, message = data.get("id"), data.get("seq"), data.get("msg")
    verdict = data.get("verdict")
    retry = data.get("retry_s")
    return Ack(
        msg_id=msg_id if isinstance(msg_id, str) else None,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        status=status,
        reason=reason,
        message=message if isinstance(message, str) else "",
        verdict=Verdict.from_wire(verdict) if isinstance(verdict, dict) else None,
        retry_s=(
            float(retry)
            if isinstance(retry, (int, float)) and not isinstance(retry, bool)
            else None
        ),
    )


def encode_presence(presence: Presence) -> bytes:
    return dumps(presence.to_wire())


def decode_presence(payload: bytes) -> Presence:
    """Decode a retained ``state/online``; ``fw`` and ``ts`` are optional but typed when present."""
    data = _load_object(payload, MAX_STATE_BYTES)
    _check_version(data, "presence")
    online = _require(data, "online", bool)
    boot = _check_int("boot", _require(data, "boot", int))
    fw = _require(data, "fw", str) if "fw" in data else None
    ts = _check_int("ts", _require(data, "ts", int)) if "ts" in data else None
    return Presence(online=online, boot=boot, firmware=fw, ts_ms=ts)


def encode_frame(device_id: str, msg_id: str, jpeg: bytes) -> bytes:
    """The ``evt/frame`` payload: the header line, a newline, then the JPEG, byte for byte.

    Refuses (``ValueError``) what :func:`decode_frame` would refuse, so a bad frame is caught
    where it is made rather than counted at the gateway.
    """
    if not valid_id(device_id, MAX_DEVICE_ID_CHARS) or not valid_id(msg_id, MAX_ID_CHARS):
        raise ValueError(f"frame ids must be identifiers: dev {device_id!r}, id {msg_id!r}")
    if not 1 <= len(jpeg) <= MAX_FRAME_BYTES:
        raise ValueError(f"a frame is 1..{MAX_FRAME_BYTES} bytes of JPEG, got {len(jpeg)}")
    if not jpeg.startswith(_JPEG_MAGIC):
        raise ValueError("a frame must be a JPEG (starting FF D8)")
    frame = Frame(device_id, msg_id, hashlib.sha256(jpeg).hexdigest(), bytes(jpeg))
    return dumps(frame.header()) + b"\n" + frame.data


def decode_frame(topic: Topic, payload: bytes) -> Frame:
    """Decode an ``evt/frame``: check the header as an envelope is checked, then the JPEG
    against the header's ``len`` and ``sha256``."""
    if len(payload) > MAX_FRAME_PAYLOAD_BYTES:
        raise ProtocolError(
            ReasonCode.PAYLOAD_TOO_LARGE,
            f"frame is {len(payload)} bytes; the limit is {MAX_FRAME_PAYLOAD_BYTES} "
            f"({MAX_FRAME_HEADER_BYTES} of header, a newline, {MAX_FRAME_BYTES} of JPEG)",
        )
    end = payload.find(b"\n", 0, MAX_FRAME_HEADER_BYTES + 1)
    if end < 0:
        raise ProtocolError(
            ReasonCode.MALFORMED_JSON,
            f"a frame starts with a JSON header line of at most {MAX_FRAME_HEADER_BYTES} bytes "
            "and a newline; found no newline",
        )
    data = _load_object(payload[:end], MAX_FRAME_HEADER_BYTES)
    _check_version(data, "frame")
    msg_id = _check_id("id", _require(data, "id", str), MAX_ID_CHARS)
    device_id = _check_id("dev", _require(data, "dev", str), MAX_DEVICE_ID_CHARS)
    size = _check_range("len", _require(data, "len", int), 1, MAX_FRAME_BYTES)
    digest = _check_sha256("sha256", _require(data, "sha256", str))
    if device_id != topic.device_id:
        raise ProtocolError(
            ReasonCode.DEVICE_MISMATCH,
            f"frame header says device {device_id!r} but was published on "
            f"{topic.device_id!r}'s topic",
            field="dev",
        )
    if topic.kind is not TopicKind.EVT or topic.name != "frame":
        raise ProtocolError(
            ReasonCode.TOPIC_MISMATCH, f"a frame must be published on .../evt/frame, not {topic}"
        )
    jpeg = payload[end + 1 :]
    if len(jpeg) != size:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"frame header says {size} bytes of JPEG but {len(jpeg)} follow it",
            field="len",
        )
    if hashlib.sha256(jpeg).hexdigest() != digest:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            "the JPEG's SHA-256 differs from the header's: the frame was damaged or mixed up",
            field="sha256",
        )
    if not jpeg.startswith(_JPEG_MAGIC):
        raise ProtocolError(
            ReasonCode.INVALID_VALUE, "frame data is not a JPEG (no FF D8 start)", field="data"
        )
    return Frame(device_id=device_id, msg_id=msg_id, sha256=digest, data=bytes(jpeg))


def encode_time(
    ts_ms: int, *, tz_min: int | None = None, tz_next: tuple[int, int] | None = None
) -> bytes:
    """``cmd/time``: the gateway's clock, in ms since 1970-01-01T00:00:00Z.

    ``tz_min`` is the site's offset from UTC at ``ts_ms`` in minutes, and ``tz_next`` the next
    change of it as (when in ms, new offset), so a device shows local time right across a
    daylight-saving change, even one that comes while it is offline.
    """
    if not _is_uint53(ts_ms):
        raise ValueError(f"time must be an integer 0..2^53-1 ms, got {ts_ms!r}")
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "ts": ts_ms}
    if tz_min is not None:
        if not _is_tz_min(tz_min):
            raise ValueError(f"tz_min must be {MIN_TZ_MIN}..{MAX_TZ_MIN} minutes, got {tz_min!r}")
        body["tz_min"] = tz_min
    if tz_next is not None:
        when, offset = tz_next
        if tz_min is None or not _is_uint53(when) or not _is_tz_min(offset):
            raise ValueError(
                f"tz_next must be (ms 0..2^53-1, offset {MIN_TZ_MIN}..{MAX_TZ_MIN}) after a "
                f"tz_min, got {tz_next!r}"
            )
        body["tz_next"] = [when, offset]
    return dumps(body)


def decode_time(payload: bytes) -> int:
    """Read a ``cmd/time`` as a device does: ``ts`` is required and checked (a wrong clock is
    worse than none); ``v`` and unknown fields are not looked at, as in an ack."""
    data = _load_object(payload, MAX_CMD_BYTES)
    return _check_int("ts", _require(data, "ts", int))


def decode_time_zone(payload: bytes) -> tuple[int | None, tuple[int, int] | None]:
    """The site's offset and its next change from a ``cmd/time`` (``decode_time`` has checked
    the rest), read tolerantly: a ``tz_min`` or ``tz_next`` of the wrong type or out of range
    reads as absent, and the device keeps the offset it had (a wrong zone shows a wrong hour,
    but stamps nothing wrong: records carry UTC)."""
    data = _load_object(payload, MAX_CMD_BYTES)
    tz_min = data.get("tz_min")
    if not _is_tz_min(tz_min):
        return None, None
    nxt = data.get("tz_next")
    if isinstance(nxt, list) and len(nxt) == 2 and _is_uint53(nxt[0]) and _is_tz_min(nxt[1]):
        return tz_min, (nxt[0], nxt[1])
    return tz_min, None


def _is_tz_min(value: object) -> bool:
    return type(value) is int and MIN_TZ_MIN <= value <= MAX_TZ_MIN


def encode_schedule(
    room: str,
    ts_ms: int,
    items: Sequence[ScheduleItem],
    *,
    checkin_open_min: int | None = None,
    release_after_min: int | None = None,
    private: bool = False,
) -> bytes:
    """``cmd/schedule`` for a meeting-room panel, items in order of start (stable).

    ``checkin_open_min``, ``release_after_min`` and ``private`` are the room's rules
    (``open``, ``rel``, ``priv``), written only when given.

    Refuses (``ValueError``) a schedule a panel would not show whole: more than 24 items, an
    item that ends before it starts, text over its limit, or more than 8192 bytes in all (a
    long list of long non-ASCII titles can get there: send fewer items).
    """
    if not 1 <= len(room) <= MAX_ROOM_CHARS:
        raise ValueError(f"room name must be 1-{MAX_ROOM_CHARS} characters, got {room!r}")
    if len(items) > MAX_SCHEDULE_ITEMS:
        raise ValueError(f"a schedule holds at most {MAX_SCHEDULE_ITEMS} items, got {len(items)}")
    for item in items:
        if not valid_id(item.booking, MAX_BOOKING_CHARS):
            raise ValueError(f"booking id {item.booking!r} must be an identifier of 1-64")
        if not 0 <= item.start_ms < item.end_ms <= MAX_SAFE_INT:
            raise ValueError(f"booking {item.booking!r} must end after it starts")
        if len(item.title) > MAX_TITLE_CHARS:
            raise ValueError(f"booking {item.booking!r}: title over {MAX_TITLE_CHARS} characters")
        if item.organiser is not None and len(item.organiser) > MAX_ORGANISER_CHARS:
            raise ValueError(
                f"booking {item.booking!r}: organiser over {MAX_ORGANISER_CHARS} characters"
            )
        if item.state is not None and item.state not in SCHEDULE_STATES:
            raise ValueError(f"booking {item.booking!r}: state {item.state!r} is not one of ours")
    for name, minutes in (("open", checkin_open_min), ("rel", release_after_min)):
        if minutes is not None and not 0 <= minutes <= MAX_ROOM_RULE_MIN:
            raise ValueError(f"schedule {name} must be 0..{MAX_ROOM_RULE_MIN} minutes")
    if not _is_uint53(ts_ms):
        raise ValueError(f"schedule time must be an integer 0..2^53-1 ms, got {ts_ms!r}")
    ordered = tuple(sorted(items, key=lambda i: i.start_ms))
    schedule = Schedule(
        room=room,
        ts_ms=ts_ms,
        items=ordered,
        checkin_open_min=checkin_open_min,
        release_after_min=release_after_min,
        private=private,
    )
    payload = dumps(schedule.to_wire())
    if len(payload) > MAX_CMD_BYTES:
        raise ValueError(
            f"schedule is {len(payload)} bytes; the limit is {MAX_CMD_BYTES}: send fewer items"
        )
    return payload


def decode_schedule(payload: bytes) -> Schedule:
    """Read a ``cmd/schedule`` as a panel does.

    Only ``items`` is required (a list): without it there is nothing to show, and the panel
    keeps what it had. Everything else is tolerant: an item that is not an object, has no
    valid ``id`` or does not end after it starts is dropped and counted; a wrong-typed
    ``room``, ``title`` or ``by`` reads as ``""``, ``""`` and null, ``ts`` as null, and only
    ``true`` is checked in. Items are kept in order of start (stable), the first 24.
    """
    data = _load_object(payload, MAX_CMD_BYTES)
    raw_items = _require(data, "items", list)
    room, ts = data.get("room"), data.get("ts")
    open_min, rel_min = data.get("open"), data.get("rel")
    items: list[ScheduleItem] = []
    dropped = 0
    for raw in raw_items:
        item = _schedule_item(raw)
        if item is None:
            dropped += 1
        else:
            items.append(item)
    items.sort(key=lambda i: i.start_ms)
    dropped += max(0, len(items) - MAX_SCHEDULE_ITEMS)
    return Schedule(
        room=room if isinstance(room, str) else "",
        ts_ms=ts if _is_uint53(ts) else None,
        items=tuple(items[:MAX_SCHEDULE_ITEMS]),
        dropped=dropped,
        checkin_open_min=open_min if _is_room_minutes(open_min) else None,
        release_after_min=rel_min if _is_room_minutes(rel_min) else None,
        private=data.get("priv") is True,
    )


def _is_room_minutes(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ROOM_RULE_MIN
    )


def _is_uint53(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INT


def _schedule_item(raw: object) -> ScheduleItem | None:
    if not isinstance(raw, dict):
        return None
    booking, start, end = raw.get("id"), raw.get("start"), raw.get("end")
    if not isinstance(booking, str) or not valid_id(booking, MAX_BOOKING_CHARS):
        return None
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    if isinstance(start, bool) or isinstance(end, bool) or not 0 <= start < end <= MAX_SAFE_INT:
        return None
    title, organiser, state = raw.get("title"), raw.get("by"), raw.get("st")
    return ScheduleItem(
        booking=booking,
        title=title if isinstance(title, str) else "",
        start_ms=start,
        end_ms=end,
        organiser=organiser if isinstance(organiser, str) else None,
        checked_in=raw.get("in") is True,
        state=state if isinstance(state, str) else None,
    )
