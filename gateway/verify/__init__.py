"""Attendance verification: decides what a punch means before it is stored.

A :class:`Verifier` sees a decoded punch (or a terminal's query, which names its person the same
way) and the device that sent it and returns a :class:`Decision`. Card and employee-number
checks against the roster come first; face and GPS checks plug in behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from devices.protocol import Envelope, ReasonCode, Verdict
from gateway.store.devices import Device
from gateway.store.roster import Person


@dataclass(frozen=True, slots=True)
class Decision:
    """What a punch means. With ``retry_s`` the check could not be made now (a busy face
    worker pool): nothing is stored and the device is told to resend after ``retry_s``."""

    accepted: bool
    reason: ReasonCode
    verdict: Verdict
    person: Person | None = None
    retry_s: float | None = None


class Verifier(Protocol):
    async def verify(self, envelope: Envelope, device: Device) -> Decision: ...
