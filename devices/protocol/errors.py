"""Tack's error tree, rooted here so the protocol package needs nothing else.

Every error carries a machine-readable ``reason_code`` (one of :class:`ReasonCode`) next to a
message a person can act on; code that decides what to do next looks at the code, never at the
text.
"""

from __future__ import annotations

from devices.protocol.reasons import ReasonCode


class TackError(Exception):
    """Root of every error Tack raises on purpose."""

    reason_code: ReasonCode = ReasonCode.INTERNAL_ERROR

    def __init__(self, message: str, *, reason_code: ReasonCode | None = None) -> None:
        super().__init__(message)
        if reason_code is not None:
            self.reason_code = reason_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProtocolError(TackError):
    """A message that does not follow wire protocol v1.

    ``field`` names the offending envelope or body field when there is one, so the device log
    and the gateway counter can say exactly what was wrong.
    """

    def __init__(self, reason_code: ReasonCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message, reason_code=reason_code)
        self.field = field
