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
    # Refused by the face check: the image, the face in it, or the match.
    IMAGE_CORRUPT = "image_corrupt"
    IMAGE_TOO_LARGE = "image_too_large"
    FACE_NOT_FOUND = "face_not_found"
    FACE_MULTIPLE = "face_multiple"
    FACE_TOO_SMALL = "face_too_small"
    FACE_BLURRY = "face_blurry"
    FACE_TOO_DARK = "face_too_dark"
    FACE_NOT_ENROLLED = "face_not_enrolled"
    FACE_MISMATCH = "face_mismatch"
    FACE_UNKNOWN = "face_unknown"
    FRAME_REPLAYED = "frame_replayed"
    # Transient: the device keeps the message and sends it again later.
    BUSY = "busy"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"
    # Refused by the GPS geofence check or answered by the attendance policy (not transient).
    OUTSIDE_GEOFENCE = "outside_geofence"
    GPS_INACCURATE = "gps_inaccurate"
    GPS_MISSING = "gps_missing"
    GPS_MOCK = "gps_mock"
    GPS_STALE = "gps_stale"
    GPS_FUTURE = "gps_future"
    GPS_IMPOSSIBLE_SPEED = "gps_impossible_speed"
    REPEAT_PUNCH = "repeat_punch"
    # Refused by the meeting-room service (docs/meeting-rooms.md); the verdict says what to do.
    ROOM_BUSY = "room_busy"
    BOOKING_NOT_FOUND = "booking_not_found"
    BOOKING_RELEASED = "booking_released"
    BOOKING_ENDED = "booking_ended"
    CHECKIN_NOT_OPEN = "checkin_not_open"
    DURATION_NOT_OFFERED = "duration_not_offered"
    # Refused by the must-read notice service (docs/notices.md).
    NOTICE_UNKNOWN = "notice_unknown"

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
    ReasonCode.IMAGE_CORRUPT: "The camera frame cannot be decoded as an image.",
    ReasonCode.IMAGE_TOO_LARGE: "The camera frame exceeds the face check's byte or pixel limit.",
    ReasonCode.FACE_NOT_FOUND: "No face was found in the camera frame.",
    ReasonCode.FACE_MULTIPLE: "More than one face is in the camera frame.",
    ReasonCode.FACE_TOO_SMALL: "The face is too small in the frame to be checked.",
    ReasonCode.FACE_BLURRY: "The frame or the face in it is too blurred to be checked.",
    ReasonCode.FACE_TOO_DARK: "The frame is too dark to check a face.",
    ReasonCode.FACE_NOT_ENROLLED: "The person has no enrolled face to compare with.",
    ReasonCode.FACE_MISMATCH: "The face does not match the person the card or number names.",
    ReasonCode.FACE_UNKNOWN: "The face matches no enrolled person clearly enough.",
    ReasonCode.FRAME_REPLAYED: "The same or a near-identical frame was already used for another "
    "punch.",
    ReasonCode.BUSY: "The gateway is overloaded; keep the message and retry after retry_s.",
    ReasonCode.STORE_UNAVAILABLE: "The gateway could not store the message (disk full or store "
    "error); keep it and retry after retry_s.",
    ReasonCode.INTERNAL_ERROR: "An unexpected gateway error; keep the message and retry.",
    ReasonCode.OUTSIDE_GEOFENCE: "The GPS fix, with its accuracy, lies outside every geofence of "
    "the site.",
    ReasonCode.GPS_INACCURATE: "The GPS fix is too inaccurate to tell inside the geofence from "
    "outside it.",
    ReasonCode.GPS_MISSING: "The site requires a GPS fix and the punch carried none.",
    ReasonCode.GPS_MOCK: "The fix came from a mock-location provider.",
    ReasonCode.GPS_STALE: "The GPS fix was taken too long before the punch.",
    ReasonCode.GPS_FUTURE: "The GPS fix is dated ahead of the gateway's clock.",
    ReasonCode.GPS_IMPOSSIBLE_SPEED: "Reaching this fix from the person's previous one would take "
    "an impossible speed.",
    ReasonCode.REPEAT_PUNCH: "The same person punched moments ago; the first punch stands and "
    "nothing new is recorded.",
    ReasonCode.ROOM_BUSY: "The room is not free for that long: another booking starts first.",
    ReasonCode.BOOKING_NOT_FOUND: "The panel named a booking this room does not have (any more).",
    ReasonCode.BOOKING_RELEASED: "Nobody checked in in time and the booking was released; the "
    "room may be booked again.",
    ReasonCode.BOOKING_ENDED: "The booking is over (it ended, or was ended early).",
    ReasonCode.CHECKIN_NOT_OPEN: "Check-in to this booking has not opened yet.",
    ReasonCode.DURATION_NOT_OFFERED: "The panel asked for a length the room does not offer.",
    ReasonCode.NOTICE_UNKNOWN: "The receipt names a notice this device was never sent.",
}
