"""Wire models of protocol v1: the event envelope, its bodies, acks, presence, camera frames
and the gateway's commands to a device.

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


class ButtonAction(enum.StrEnum):
    """The buttons of a meeting-room panel."""

    BOOK = "book"
    RELEASE = "release"
    EXTEND = "extend"
    CHECKIN = "checkin"
    CANCEL = "cancel"


class QueryTopic(enum.StrEnum):
    """What a person can ask a terminal (the ``q`` of a ``query`` event)."""

    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class GpsFix:
    """Where a terminal was when it read a credential.

    Integers only (1e-7 degrees, metres, milliseconds): a float prints differently on
    MicroPython and CPython, and a resend must carry the same bytes.
    """

    lat_e7: int
    lon_e7: int
    acc_m: int | None = None
    ts_ms: int | None = None
    # Who made the fix ("gps" for a receiver, "network"/"fused" on a phone) and whether the
    # platform flagged it as a mock location: None when the sender does not know.
    provider: str | None = None
    mock: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lat": self.lat_e7, "lon": self.lon_e7}
        if self.acc_m is not None:
            out["acc"] = self.acc_m
        if self.ts_ms is not None:
            out["ts"] = self.ts_ms
        if self.provider is not None:
            out["prov"] = self.provider
        if self.mock is not None:
            out["mock"] = self.mock
        return out


@dataclass(frozen=True, slots=True)
class PhotoRef:
    """The camera frame of a punch, sent on ``evt/frame`` before the punch itself."""

    size_bytes: int
    sha256: str

    def to_wire(self) -> dict[str, Any]:
        return {"len": self.size_bytes, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class PunchBody:
    """A clock-in: exactly one credential, as read by the terminal, and optionally where the
    terminal was and which camera frame goes with it."""

    credential_type: CredentialType
    credential: str
    gps: GpsFix | None = None
    photo: PhotoRef | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {str(self.credential_type): self.credential}
        if self.gps is not None:
            out["gps"] = self.gps.to_wire()
        if self.photo is not None:
            out["photo"] = self.photo.to_wire()
        return out


@dataclass(frozen=True, slots=True)
class CheckinBody:
    """A person checked in to a booking on a meeting-room panel."""

    booking: str

    def to_wire(self) -> dict[str, Any]:
        return {"booking": self.booking}


@dataclass(frozen=True, slots=True)
class ButtonBody:
    """A press on a meeting-room panel; ``booking`` names the booking it applies to, and
    ``minutes`` how long to book or extend."""

    button: ButtonAction
    booking: str | None = None
    minutes: int | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"button": str(self.button)}
        if self.booking is not None:
            out["booking"] = self.booking
        if self.minutes is not None:
            out["minutes"] = self.minutes
        return out


@dataclass(frozen=True, slots=True)
class QueryBody:
    """A person asked the terminal something (v1: their leave balance), showing a credential
    as for a punch. Nothing is clocked: the answer is the ack's verdict, and the gateway keeps
    the question only locally, for a resend to be answered the same and for facilities to see
    who asked."""

    credential_type: CredentialType
    credential: str
    q: QueryTopic

    def to_wire(self) -> dict[str, Any]:
        return {str(self.credential_type): self.credential, "q": str(self.q)}


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    """A person acknowledged a must-read notice on the device (docs/notices.md): ``notice`` is
    the notice's id as ``cmd/notice`` gave it, ``by`` the card or employee number the person
    showed to acknowledge it, when the device asked for one (None otherwise)."""

    notice: str
    by: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"notice": self.notice}
        if self.by is not None:
            out["by"] = self.by
        return out


Body = PunchBody | CheckinBody | ButtonBody | QueryBody | ReceiptBody


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
    """What the device shows the person in front of it.

    ``text`` is English. An accepted punch also says what it means in fields a device can put
    into its own language: ``cls`` (one of :data:`VERDICT_CLASSES`), ``minutes`` late or early,
    ``at`` the local time ("HH:MM"; for a repeat, the first punch's) and ``leave`` (the person
    has approved leave that day). A device that knows no ``cls`` shows ``text``.
    """

    ok: bool
    text: str
    name: str | None = None
    cls: str | None = None
    minutes: int | None = None
    at: str | None = None
    leave: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "name": self.name, "text": self.text}
        if self.cls is not None:
            out["cls"] = self.cls
        if self.minutes is not None:
            out["min"] = self.minutes
        if self.at is not None:
            out["at"] = self.at
        if self.leave is not None:
            out["leave"] = self.leave
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Verdict:
        # Tolerant, but never optimistic: only a JSON true shows a green verdict.
        text, name = data.get("text"), data.get("name")
        kind, minutes, at, leave = (
            data.get("cls"),
            data.get("min"),
            data.get("at"),
            data.get("leave"),
        )
        return cls(
            ok=data.get("ok") is True,
            text=text if isinstance(text, str) else "",
            name=name if isinstance(name, str) else None,
            cls=kind if isinstance(kind, str) else None,
            minutes=minutes if isinstance(minutes, int) and not isinstance(minutes, bool) else None,
            at=at if isinstance(at, str) else None,
            leave=leave if isinstance(leave, bool) else None,
        )


# What an accepted punch meant, for a device to say in its own words (Verdict.cls); "balance"
# answers a leave-balance query, its text the balances ("annual 7.5 d, sick 12 h").
VERDICT_CLASSES = ("in", "out", "late", "left_early", "repeat", "no_shift", "balance")


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


@dataclass(frozen=True, slots=True)
class Frame:
    """A camera frame from ``evt/frame``: the JPEG of the punch whose id is ``msg_id``.

    It has no ack of its own: the punch's ack covers it (docs/protocol.md, section 5).
    """

    device_id: str
    msg_id: str
    sha256: str
    data: bytes = field(repr=False)

    def header(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "id": self.msg_id,
            "dev": self.device_id,
            "len": len(self.data),
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class ScheduleItem:
    """One booking on a meeting-room panel's schedule."""

    booking: str
    title: str
    start_ms: int
    end_ms: int
    organiser: str | None = None
    checked_in: bool = False
    # The booking's state at the gateway (SCHEDULE_STATES), so a panel can light amber while
    # check-in is open; None (not sent) from a gateway without a room service.
    state: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.booking,
            "title": self.title,
            "start": self.start_ms,
            "end": self.end_ms,
            "by": self.organiser,
            "in": self.checked_in,
        }
        if self.state is not None:
            out["st"] = self.state
        return out


# What a schedule item's ``st`` says: not yet open for check-in, open for check-in (before or
# after start, until the no-show release), checked in. Released and ended bookings are not sent.
SCHEDULE_STATES = ("upcoming", "open", "in")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Retained ``cmd/schedule``: what a meeting-room panel shows.

    As read by a device, ``ts_ms`` is ``None`` when the gateway's time was unreadable, and
    ``dropped`` counts the items that were unreadable (or beyond the 24 a panel keeps).
    """

    room: str
    ts_ms: int | None
    items: tuple[ScheduleItem, ...] = ()
    dropped: int = 0
    # The room's rules, so a panel that goes offline can still open check-in and show a no-show
    # release on time (``open``, ``rel``: minutes before and after start), and whether it must
    # hide meeting subjects (``priv``). Sent only when set.
    checkin_open_min: int | None = None
    release_after_min: int | None = None
    private: bool = False

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "room": self.room,
            "ts": self.ts_ms,
            "items": [item.to_wire() for item in self.items],
        }
        if self.checkin_open_min is not None:
            out["open"] = self.checkin_open_min
        if self.release_after_min is not None:
            out["rel"] = self.release_after_min
        if self.private:
            out["priv"] = True
        return out
