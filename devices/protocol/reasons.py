"""Reason codes: the one vocabulary for why a message was accepted, refused or deferred.

The same strings travel in acks (``reason``), label the gateway's counters and appear in logs.
``docs/protocol.md`` lists them with the same meanings; a test keeps the two in step.
"""

from __future__ import annotations

import enum


class ReasonCode(enum.StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    # Malformed input: the device sent something this protocol version cannot read.
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNSUPPORTED_VERSION = "unsupported_version"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_KIND = "unknown_kind"
    # Well-formed, refused by the gateway's registry or verifier.
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_REVOKED = "device_revoked"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    PERSON_INACTIVE = "person_inactive"
    # Transient: the device keeps the message and sends it again later.
    BUSY = "busy"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"

    @classmethod
    def parse(cls, value: object) -> ReasonCode | None:
        """Tolerant parse of a wire value: an unknown code is ``None``, never an exception."""
        if not isinstance(value, str):
            return None
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def transient(self) -> bool:
        """True when the device should keep the message and retry, not drop it."""
        return self in _TRANSIENT

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


_TRANSIENT = frozenset({ReasonCode.BUSY, ReasonCode.STORE_UNAVAILABLE, ReasonCode.INTERNAL_ERROR})

MEANINGS: dict[ReasonCode, str] = {
    ReasonCode.OK: "Stored; the verdict says what to show.",
    ReasonCode.DUPLICATE: "Already stored under this message id; the verdict repeats the first.",
    ReasonCode.MALFORMED_JSON: "The payload is not UTF-8 JSON.",
    ReasonCode.NOT_AN_OBJECT: "The payload is JSON but not an object.",
    ReasonCode.MISSING_FIELD: "A required field is absent; the message names it.",
    ReasonCode.WRONG_TYPE: "A field has the wrong JSON type; the message names it.",
    ReasonCode.INVALID_VALUE: "A field is out of range or does not match its pattern.",
    ReasonCode.UNSUPPORTED_VERSION: "This gateway does not speak the envelope's protocol version.",
    ReasonCode.PAYLOAD_TOO_LARGE: "The payload exceeds the size limit for its topic.",
    ReasonCode.BAD_TOPIC: "The topic does not follow tack/v1/{site}/{device_id}/{kind}/{name}.",
    ReasonCode.TOPIC_MISMATCH: "The envelope's kind differs from the topic's last level.",
    ReasonCode.DEVICE_MISMATCH: "The envelope's device id differs from the topic's device id.",
    ReasonCode.UNKNOWN_KIND: "The message kind is not part of this protocol version.",
    ReasonCode.UNKNOWN_DEVICE: "The device is not registered at this gateway.",
    ReasonCode.DEVICE_REVOKED: "The device was registered but has been revoked.",
    ReasonCode.UNKNOWN_CREDENTIAL: "No person in the roster holds this card or employee number.",
    ReasonCode.PERSON_INACTIVE: "The person is in the roster but no longer active.",
    ReasonCode.BUSY: "The gateway is overloaded; keep the message and retry after retry_s.",
    ReasonCode.STORE_UNAVAILABLE: "The gateway could not store the message (disk full or store "
    "error); keep it and retry after retry_s.",
    ReasonCode.INTERNAL_ERROR: "An unexpected gateway error; keep the message and retry.",
}
