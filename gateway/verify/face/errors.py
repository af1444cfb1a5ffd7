"""Errors of the face check, each with the reason code a caller acts on."""

from __future__ import annotations

from devices.protocol.errors import TackError
from devices.protocol.reasons import ReasonCode


class FaceError(TackError):
    """Root of the face check's errors."""


class FaceUnavailableError(FaceError):
    """The optional ``face`` extra (dlib, face_recognition, OpenCV) is not installed."""


class FaceKeyError(FaceError):
    """The template key file is missing, malformed, or not the key the templates were sealed
    with. Configuration, not data: nothing is read until it is fixed."""


class FaceTemplateError(FaceError):
    """A stored template fails its integrity check: tampered with or corrupted on disk."""


class FaceBusyError(FaceError):
    """Every encoding worker is busy and the queue is full; ask again after ``retry_s``."""

    reason_code = ReasonCode.BUSY

    def __init__(self, message: str, *, retry_s: float) -> None:
        super().__init__(message)
        self.retry_s = retry_s
