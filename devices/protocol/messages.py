"""Wire models of protocol v1: the event envelope, its bodies, acks and presence.

Models are frozen and slotted. Decoding is strict about what a message must carry and tolerant
of what it may add: unknown fields are ignored, so a newer device can talk to an older gateway.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from devices.protocol.limits import PROTOCOL_VERSION
from devices.protocol.reasons import ReasonCode


class AckStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class CredentialType(enum.StrEnum):
    CARD = "card"
    EMPLOYEE = "emp"


@dataclass(frozen=True, slots=True)
class PunchBody:
    """A clock-in: exactly one credential, as read by the terminal."""

    credential_type: CredentialType
    credential: str

    def to_wire(self) -> dict[str, Any]:
        return {str(self.credential_type): self.credential}


Body = PunchBody


@dataclass(frozen=True, slots=True)
class Envelope:
    """One device event. ``(device_id, msg_id)`` identifies it for ever; ``seq`` orders it."""

    device_id: str
    msg_id: str
    seq: int
    device_ts_ms: int
    kind: str
    body: Body
    version: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": self.version,
            "id": self.msg_id,
            "dev": self.device_id,
            "seq": self.seq,
            "ts": self.device_ts_ms,
            "kind": self.kind,
            "body": self.body.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the device shows the person in front of it."""

    ok: bool
    text: str
    name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"ok": self.ok, "name": self.name, "text": self.text}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Verdict:
        # Tolerant, but never optimistic: only a JSON true shows a green verdict.
        text, name = data.get("text"), data.get("name")
        return cls(
            ok=data.get("ok") is True,
            text=text if isinstance(text, str) else "",
            name=name if isinstance(name, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway's answer on ``cmd/ack``, sent only once the record is committed.

    ``msg_id`` is ``None`` when the event was too broken to carry an id; the device can then
    only log the reason.
    """

    msg_id: str | None
    seq: int | None
    status: AckStatus
    reason: ReasonCode
    message: str = ""
    verdict: Verdict | None = None
    retry_s: float | None = None
    version: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": self.version,
            "id": self.msg_id,
            "seq": self.seq,
            "status": str(self.status),
            "reason": str(self.reason),
            "msg": self.message,
            "verdict": self.verdict.to_wire() if self.verdict else None,
        }
        if self.retry_s is not None:
            out["retry_s"] = self.retry_s
        return out


@dataclass(frozen=True, slots=True)
class Presence:
    """Retained ``state/online``. ``boot`` counts device start-ups, so a last will from an
    earlier boot that arrives after the device came back can be recognised and ignored."""

    online: bool
    boot: int
    firmware: str | None = None
    ts_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "online": self.online, "boot": self.boot}
        if self.firmware is not None:
            out["fw"] = self.firmware
        if self.ts_ms is not None:
            out["ts"] = self.ts_ms
        return out
