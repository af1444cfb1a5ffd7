"""Encode and decode protocol v1 messages (compact JSON).

Decoding checks, in this order: size, UTF-8 JSON, object, version, the envelope fields in wire
order (each present, then of its type, then in range: ``id``, ``dev``, ``seq``, ``ts``, then
``kind`` and ``body`` present and typed), a known kind, the device id against the topic, the
kind against the topic, and last the body's own fields. The first failure raises
:class:`ProtocolError` with the reason code the shared test vectors expect, so every
implementation reports the same code for the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from devices.protocol.errors import ProtocolError
from devices.protocol.limits import (
    MAX_CREDENTIAL_CHARS,
    MAX_DEVICE_ID_CHARS,
    MAX_EVT_BYTES,
    MAX_ID_CHARS,
    MAX_SAFE_INT,
    MAX_STATE_BYTES,
    PROTOCOL_VERSION,
)
from devices.protocol.messages import (
    Ack,
    AckStatus,
    Body,
    CredentialType,
    Envelope,
    Presence,
    PunchBody,
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


_TYPE_NAMES = {int: "integer", str: "string", dict: "object", bool: "boolean"}


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


def _check_id(name: str, value: str, limit: int, where: str = "") -> str:
    if not valid_id(value, limit):
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            f"{where}field {name!r} must be 1-{limit} of A-Z a-z 0-9 _ -, got {value[:80]!r}",
            field=where + name,
        )
    return value


def _punch_body(body: dict[str, Any]) -> PunchBody:
    present = [t for t in _CREDENTIAL_TYPES if t.value in body]
    if not present:
        raise ProtocolError(
            ReasonCode.MISSING_FIELD,
            "body: a punch needs 'card' (card number) or 'emp' (employee number)",
            field="body.card",
        )
    if len(present) > 1:
        raise ProtocolError(
            ReasonCode.INVALID_VALUE,
            "body: a punch carries exactly one of 'card' and 'emp', not both",
            field="body",
        )
    ctype = present[0]
    value = _require(body, ctype.value, str, "body.")
    _check_id(ctype.value, value, MAX_CREDENTIAL_CHARS, "body.")
    return PunchBody(credential_type=ctype, credential=value)


BODY_DECODERS: dict[str, Callable[[dict[str, Any]], Body]] = {"punch": _punch_body}
"""Event kinds of protocol v1 and the decoder of each one's body."""


def decode_event(topic: Topic, payload: bytes) -> Envelope:
    """Decode an ``evt`` message received on ``topic``."""
    data = _load_object(payload, MAX_EVT_BYTES)
    version = _require(data, "v", int)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ReasonCode.UNSUPPORTED_VERSION,
            f"protocol version {version} is not supported; this gateway speaks {PROTOCOL_VERSION}",
            field="v",
        )
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
    version = _require(data, "v", int)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ReasonCode.UNSUPPORTED_VERSION,
            f"presence version {version} is not supported",
            field="v",
        )
    online = _require(data, "online", bool)
    boot = _check_int("boot", _require(data, "boot", int))
    fw = _require(data, "fw", str) if "fw" in data else None
    ts = _check_int("ts", _require(data, "ts", int)) if "ts" in data else None
    return Presence(online=online, boot=boot, firmware=fw, ts_ms=ts)
