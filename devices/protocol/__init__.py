"""Wire protocol v1 of Tack devices: topics, envelope, acks, presence, reason codes.

Pure Python with no third-party imports, so device tools, simulators and the gateway share it
and it can be read alongside the MicroPython codec in ``firmware/``.
"""

from devices.protocol.codec import (
    BODY_DECODERS,
    decode_ack,
    decode_event,
    decode_presence,
    dumps,
    encode_ack,
    encode_event,
    encode_presence,
)
from devices.protocol.errors import ProtocolError, TackError
from devices.protocol.limits import MAX_EVT_BYTES, MAX_STATE_BYTES, PROTOCOL_VERSION
from devices.protocol.messages import (
    Ack,
    AckStatus,
    CredentialType,
    Envelope,
    Presence,
    PunchBody,
    Verdict,
)
from devices.protocol.reasons import MEANINGS, ReasonCode
from devices.protocol.topics import Topic, TopicKind, parse_topic, topic

__all__ = [
    "BODY_DECODERS",
    "MAX_EVT_BYTES",
    "MAX_STATE_BYTES",
    "MEANINGS",
    "PROTOCOL_VERSION",
    "Ack",
    "AckStatus",
    "CredentialType",
    "Envelope",
    "Presence",
    "ProtocolError",
    "PunchBody",
    "ReasonCode",
    "TackError",
    "Topic",
    "TopicKind",
    "Verdict",
    "decode_ack",
    "decode_event",
    "decode_presence",
    "dumps",
    "encode_ack",
    "encode_event",
    "encode_presence",
    "parse_topic",
    "topic",
]
