"""Transports carry device messages to the gateway's core as one internal type.

The core never knows whether MQTT or BLE carried a message: it gets an :class:`Inbound`, answers
through :meth:`Transport.publish`, and calls ``settle()`` once the message is dealt with, which
for MQTT is the moment the broker may forget it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_s: float  # time.monotonic() on arrival, for ack latency
    transport: str
    redelivered: bool
    settle: Callable[[], None]


class Transport(Protocol):
    name: str

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 message to a device; the transport retries it across reconnects."""
