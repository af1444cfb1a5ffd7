"""Transports carry device messages to the gateway's core as one internal type.

The core never knows whether MQTT or BLE carried a message: it gets an :class:`Inbound` in a
:data:`Handler` coroutine and answers through :meth:`Transport.publish`. The handler returns
``True`` once the message is dealt with (for MQTT, the moment the broker may forget it: the
PUBACK goes out) or ``False`` to leave it with the sender, which delivers it again later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_s: float  # time.monotonic() on arrival, for ack latency
    transport: str
    redelivered: bool


Handler = Callable[[Inbound], Awaitable[bool]]


class Transport(Protocol):
    name: str

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Queue a message to a device (QoS 1 unless said otherwise)."""
