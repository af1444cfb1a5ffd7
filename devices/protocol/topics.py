"""MQTT topic scheme: ``tack/v1/{site}/{device_id}/{kind}/{name}``.

``kind`` is ``evt`` (device to gateway), ``cmd`` (gateway to device) or ``state`` (retained
presence). Sites and device ids are restricted to characters that are never MQTT wildcards or
level separators, so a topic built from them can be parsed back without ambiguity.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from devices.protocol.errors import ProtocolError
from devices.protocol.limits import MAX_DEVICE_ID_CHARS, MAX_SITE_CHARS
from devices.protocol.reasons import ReasonCode

PREFIX = "tack/v1"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class TopicKind(enum.StrEnum):
    EVT = "evt"
    CMD = "cmd"
    STATE = "state"


_KINDS = frozenset(k.value for k in TopicKind)


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    device_id: str
    kind: TopicKind
    name: str

    def __str__(self) -> str:
        return f"{PREFIX}/{self.site}/{self.device_id}/{self.kind}/{self.name}"


def valid_id(value: str, max_chars: int) -> bool:
    """True when ``value`` may stand as a site, device id or topic name."""
    return 0 < len(value) <= max_chars and _NAME_RE.match(value) is not None


def topic(site: str, device_id: str, kind: TopicKind | str, name: str) -> str:
    """Build a topic, refusing parts that would make it ambiguous."""
    if not valid_id(site, MAX_SITE_CHARS):
        raise ValueError(f"site {site!r} must be 1-{MAX_SITE_CHARS} of A-Z a-z 0-9 _ -")
    if not valid_id(device_id, MAX_DEVICE_ID_CHARS):
        raise ValueError(
            f"device id {device_id!r} must be 1-{MAX_DEVICE_ID_CHARS} of A-Z a-z 0-9 _ -"
        )
    return str(Topic(site, device_id, TopicKind(kind), name))


def parse_topic(value: str) -> Topic:
    """Parse a topic or raise :class:`ProtocolError` with ``bad_topic``."""
    parts = value.split("/")
    if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise ProtocolError(
            ReasonCode.BAD_TOPIC,
            f"topic {value!r} is not tack/v1/{{site}}/{{device_id}}/{{evt|cmd|state}}/{{name}}",
        )
    _, _, site, device_id, kind, name = parts
    if kind not in _KINDS:
        raise ProtocolError(
            ReasonCode.BAD_TOPIC, f"topic {value!r}: level 5 must be evt, cmd or state"
        )
    for label, part, limit in (
        ("site", site, MAX_SITE_CHARS),
        ("device id", device_id, MAX_DEVICE_ID_CHARS),
        ("name", name, MAX_SITE_CHARS),
    ):
        if not valid_id(part, limit):
            raise ProtocolError(
                ReasonCode.BAD_TOPIC,
                f"topic {value!r}: {label} {part!r} must be 1-{limit} of A-Z a-z 0-9 _ -",
            )
    return Topic(site, device_id, TopicKind(kind), name)
