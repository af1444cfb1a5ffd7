"""Wire protocol v1 of Tack devices: topics, envelope, acks, presence, camera frames, commands
to a device, reason codes.

Pure Python with no third-party imports, so device tools, simulators and the gateway share it
and it can be read alongside the MicroPython codec in ``firmware/``.
"""

from devices.protocol.codec import (
    BODY_DECODERS,
    decode_ack,
    decode_event,
    decode_frame,
    decode_presence,
    decode_schedule,
    decode_time,
    dumps,
    encode_ack,
    encode_event,
    encode_frame,
    encode_presence,
    encode_schedule,
    encode_time,
)
from devices.protocol.errors import ProtocolError, TackError
from devices.protocol.limits import (
    MAX_CMD_BYTES,
    MAX_EVT_BYTES,
    MAX_FRAME_BYTES,
    MAX_FRAME_HEADER_BYTES,
    MAX_STATE_BYTES,
    PROTOCOL_VERSION,
)
from devices.protocol.messages import (
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
    Schedule,
    ScheduleItem,
    Verdict,
)
from devices.protocol.reasons import MEANINGS, ReasonCode
from devices.protocol.topics import Topic, TopicKind, parse_topic, topic

__all__ = [
    "BODY_DECODERS",
    "MAX_CMD_BYTES",
    "MAX_EVT_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_HEADER_BYTES",
    "MAX_STATE_BYTES",
    "MEANINGS",
    "PROTOCOL_VERSION",
    "Ack",
    "AckStatus",
    "Body",
    "ButtonAction",
    "ButtonBody",
    "CheckinBody",
    "CredentialType",
    "Envelope",
    "Frame",
    "GpsFix",
    "PhotoRef",
    "Presence",
    "ProtocolError",
    "PunchBody",
    "ReasonCode",
    "Schedule",
    "ScheduleItem",
    "TackError",
    "Topic",
    "TopicKind",
    "Verdict",
    "decode_ack",
    "decode_event",
    "decode_frame",
    "decode_presence",
    "decode_schedule",
    "decode_time",
    "dumps",
    "encode_ack",
    "encode_event",
    "encode_frame",
    "encode_presence",
    "encode_schedule",
    "encode_time",
    "parse_topic",
    "topic",
]
