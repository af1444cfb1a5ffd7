"""Readers for the shared vectors and schemas in ``devices/protocol/``.

The vector files are the contract the firmware is tested against too, so the tests read them
exactly as a firmware test would: plain JSON, payloads from ``payload`` (UTF-8) or
``payload_hex`` (plus ``append_zeros`` zero bytes in frames_v1.json).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import devices.protocol
from devices.protocol import (
    Ack,
    AckStatus,
    Body,
    ButtonAction,
    ButtonBody,
    CheckinBody,
    CredentialType,
    Envelope,
    GpsFix,
    NoticeItem,
    Notices,
    PhotoRef,
    Presence,
    PunchBody,
    QueryBody,
    QueryTopic,
    ReasonCode,
    ReceiptBody,
    Schedule,
    ScheduleItem,
    Verdict,
)

PROTOCOL_DIR = Path(devices.protocol.__file__).parent
VECTOR_FILES = (
    "events_v1.json",
    "topics_v1.json",
    "acks_v1.json",
    "presence_v1.json",
    "frames_v1.json",
    "commands_v1.json",
)
VECTORS_DIR = PROTOCOL_DIR / "vectors"
SCHEMAS_DIR = PROTOCOL_DIR / "schemas"
DOCS_PATH = PROTOCOL_DIR.parents[1] / "docs" / "protocol.md"

Case = dict[str, Any]

# Reasons a JSON Schema can see from the payload alone. Size, UTF-8, and agreement with the
# topic are for the decoder; so are integers written as 1.0 (vectors mark those schema_valid).
SCHEMA_VISIBLE_REASONS = frozenset(
    {
        ReasonCode.NOT_AN_OBJECT,
        ReasonCode.MISSING_FIELD,
        ReasonCode.WRONG_TYPE,
        ReasonCode.INVALID_VALUE,
        ReasonCode.UNSUPPORTED_VERSION,
        ReasonCode.UNKNOWN_KIND,
    }
)


@functools.cache
def load_cases(filename: str) -> tuple[Case, ...]:
    doc = json.loads((VECTORS_DIR / filename).read_text(encoding="utf-8"))
    assert doc["version"] == 1, filename
    return tuple(doc["cases"])


def params(filename: str, *, ok: bool | None = None) -> list[Any]:
    """The cases of one file as pytest params with the vector names as ids."""
    return [
        pytest.param(case, id=case["name"])
        for case in load_cases(filename)
        if ok is None or case["expect"]["ok"] is ok
    ]


def payload_of(case: Case) -> bytes:
    if "payload_hex" in case:
        return bytes.fromhex(case["payload_hex"]) + bytes(case.get("append_zeros", 0))
    text: str = case["payload"]
    return text.encode("utf-8")


def _any_int(text: str) -> int:
    # CPython will not convert more than 4300 digits; the magnitude is all a schema compares.
    if len(text) > 4000:
        return -(10**4000) if text.startswith("-") else 10**4000
    return int(text)


def json_of(case: Case) -> Any:
    """The payload as plain JSON, for checking against a schema."""
    return json.loads(payload_of(case), parse_int=_any_int)


def frame_header_of(case: Case) -> Any:
    """A frame's header line as plain JSON (the bytes before the first newline)."""
    return json.loads(payload_of(case).split(b"\n", 1)[0], parse_int=_any_int)


def expected_body(kind: str, b: Case) -> Body:
    if kind == "checkin":
        return CheckinBody(booking=b["booking"])
    if kind == "button":
        return ButtonBody(
            button=ButtonAction(b["button"]), booking=b["booking"], minutes=b["minutes"]
        )
    if kind == "receipt":
        return ReceiptBody(notice=b["notice"], by=b["by"])
    if kind == "query":
        return QueryBody(
            credential_type=CredentialType(b["credential_type"]),
            credential=b["credential"],
            q=QueryTopic(b["q"]),
        )
    gps, photo = b["gps"], b["photo"]
    return PunchBody(
        credential_type=CredentialType(b["credential_type"]),
        credential=b["credential"],
        gps=GpsFix(
            gps["lat_e7"],
            gps["lon_e7"],
            gps["acc_m"],
            gps["ts_ms"],
            gps.get("provider"),
            gps.get("mock"),
        )
        if gps
        else None,
        photo=PhotoRef(photo["size_bytes"], photo["sha256"]) if photo else None,
    )


def expected_envelope(expect: Case) -> Envelope:
    e = expect["envelope"]
    return Envelope(
        device_id=e["device_id"],
        msg_id=e["msg_id"],
        seq=e["seq"],
        device_ts_ms=e["device_ts_ms"],
        kind=e["kind"],
        body=expected_body(e["kind"], e["body"]),
    )


def expected_schedule(expect: Case) -> Schedule:
    s = expect["schedule"]
    return Schedule(
        room=s["room"],
        ts_ms=s["ts_ms"],
        items=tuple(
            ScheduleItem(
                booking=i["booking"],
                title=i["title"],
                start_ms=i["start_ms"],
                end_ms=i["end_ms"],
                organiser=i["organiser"],
                checked_in=i["checked_in"],
                state=i.get("state"),
            )
            for i in s["items"]
        ),
        dropped=s["dropped"],
        checkin_open_min=s.get("checkin_open_min"),
        release_after_min=s.get("release_after_min"),
        private=s.get("private", False),
    )


def expected_notices(expect: Case) -> Notices:
    n = expect["notices"]
    return Notices(
        ts_ms=n["ts_ms"],
        items=tuple(
            NoticeItem(
                notice_id=i["notice_id"],
                title=i["title"],
                text=i["text"],
                ts_ms=i["ts_ms"],
                sender=i["sender"],
            )
            for i in n["items"]
        ),
        dropped=n["dropped"],
    )


def expected_ack(expect: Case) -> Ack:
    a = expect["ack"]
    v = a["verdict"]
    return Ack(
        msg_id=a["msg_id"],
        seq=a["seq"],
        status=AckStatus(a["status"]),
        reason=ReasonCode(a["reason"]),
        message=a["message"],
        verdict=Verdict(
            ok=v["ok"],
            text=v["text"],
            name=v["name"],
            cls=v.get("cls"),
            minutes=v.get("min"),
            at=v.get("at"),
            leave=v.get("leave"),
        )
        if v is not None
        else None,
        retry_s=a["retry_s"],
    )


def expected_presence(expect: Case) -> Presence:
    p = expect["presence"]
    return Presence(online=p["online"], boot=p["boot"], firmware=p["firmware"], ts_ms=p["ts_ms"])


def outbox_action(ack: Ack) -> str:
    """What a device does with the outbox message an ack answers (docs/protocol.md)."""
    if ack.msg_id is None:
        return "unmatched"
    if ack.status is AckStatus.REJECTED and ack.reason.transient:
        return "keep"
    return "remove"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return schema


SCHEMA_NAMES = (
    "envelope",
    "punch",
    "checkin",
    "button",
    "query",
    "receipt",
    "ack",
    "presence",
    "frame",
    "time",
    "schedule",
    "notice",
)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one schema that resolves the others locally, never over the network."""
    registry: Registry[Any] = Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES
    )
    return Draft202012Validator(load_schema(name), registry=registry)
