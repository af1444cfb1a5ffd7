"""Face verification for punches: dlib's 128-d encodings through face_recognition, OpenCV for
decoding and quality, templates sealed with AES-256-GCM, a bounded pool of worker processes.

Needs the optional ``face`` extra (``uv sync --extra face``; ``make install`` does it). The
operating point and what it was measured on are in docs/attendance.md, "Face".
"""

from __future__ import annotations

from gateway.verify.face.errors import (
    FaceBusyError,
    FaceError,
    FaceKeyError,
    FaceTemplateError,
    FaceUnavailableError,
)
from gateway.verify.face.verifier import (
    EnrollResult,
    FaceResult,
    FaceVerifier,
    PhotoOutcome,
    enroll_photos,
    limits_from,
)

__all__ = [
    "EnrollResult",
    "FaceBusyError",
    "FaceError",
    "FaceKeyError",
    "FaceResult",
    "FaceTemplateError",
    "FaceUnavailableError",
    "FaceVerifier",
    "PhotoOutcome",
    "enroll_photos",
    "limits_from",
]
