"""From image bytes to one 128-d face encoding, or the reason there is none.

This is the expensive step (HOG detection and dlib's ResNet, about 0.1 s a frame on one core),
so it runs in worker processes (:mod:`gateway.verify.face.pool`); everything here is a plain
function of its arguments, picklable in and out.

The gates run cheapest first and stop at the first failure, so a corrupt or oversized frame
costs almost nothing and the person at the door hears the most useful reason:

1. bytes over ``max_bytes`` -> ``image_too_large``;
2. the header's width x height over ``max_pixels`` (read before decoding, so a small JPEG that
   decodes to gigabytes is refused unread) -> ``image_too_large``;
3. OpenCV cannot decode it -> ``image_corrupt``;
4. mean luminance under ``min_brightness`` -> ``face_too_dark`` (HOG finds nothing in the dark,
   and "no face" would send the person the wrong way);
5. no face -> ``face_not_found``; more than one -> ``face_multiple``;
6. the face box shorter than ``min_face_px`` -> ``face_too_small``;
7. the variance of the Laplacian over the face, rescaled to 112 px, under ``min_sharpness``
   -> ``face_blurry``.

The default limits come from the shared photo set (docs/attendance.md, "Face"): every real
photo there passes them with a margin.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from devices.protocol.reasons import ReasonCode
from gateway.verify.face.errors import FaceUnavailableError
from gateway.verify.face.phash import phash

ENCODING_DIM = 128
SHARPNESS_SIDE = 112  # face crops are rescaled to this before the Laplacian: scale-free blur
Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition's order)
Pixels = npt.NDArray[Any]  # OpenCV's arrays: uint8 grey or BGR


@dataclass(frozen=True, slots=True)
class QualityLimits:
    max_bytes: int = 4_000_000
    max_pixels: int = 4_000_000
    work_max_side: int = 1024  # bigger images are shrunk before detection (time grows with px)
    min_brightness: float = 35.0
    min_face_px: int = 60
    min_sharpness: float = 12.0
    upsample: int = 1


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one image yielded. ``encoding`` is set exactly when ``reason`` is ``ok``."""

    reason: ReasonCode
    detail: str
    encoding: npt.NDArray[np.float64] | None = None
    phash: bytes | None = None
    box: Box | None = None
    faces: int = 0
    brightness: float | None = None
    sharpness: float | None = None
    size: tuple[int, int] | None = field(default=None)  # width, height as stored

    @property
    def ok(self) -> bool:
        return self.reason is ReasonCode.OK


_face_recognition: Any = None


def load_models() -> Any:
    """Import face_recognition once per process (it loads dlib's models, about 0.5 s).

    ``face_recognition_models`` imports ``pkg_resources``, which setuptools 80 warns about and
    81+ removed; the warning is silenced here and the pin lives in pyproject's ``face`` extra.
    """
    global _face_recognition
    if _face_recognition is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import face_recognition
        except (ImportError, SystemExit) as exc:
            # face_recognition calls quit() when its models package fails to import.
            raise FaceUnavailableError(
                "the face check needs the optional 'face' extra (dlib-bin, face-recognition, "
                "face-recognition-models, setuptools<81): run `uv sync --extra face` or "
                "`make install`"
            ) from exc
        _face_recognition = face_recognition
    return _face_recognition


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def decode(data: bytes) -> Pixels | None:
    """BGR pixels, or ``None`` when OpenCV cannot read the bytes (alpha is dropped)."""
    if not data:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        return None
    return np.asarray(img)


def sharpness(gray: Pixels, box: Box) -> float:
    top, right, bottom, left = box
    h, w = gray.shape[:2]
    crop = gray[max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
    if crop.size == 0:
        return 0.0
    crop = cv2.resize(crop, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def analyse(data: bytes, limits: QualityLimits) -> Analysis:
    """Run the gates and, when they pass, encode the one face (see the module docstring)."""
    if len(data) > limits.max_bytes:
        return Analysis(
            ReasonCode.IMAGE_TOO_LARGE,
            f"{len(data)} bytes, over the limit of {limits.max_bytes}",
        )
    size = image_size(data)
    if size is not None and size[0] * size[1] > limits.max_pixels:
        return Analysis(
            ReasonCode.IMAGE_TOO_LARGE,
            f"{size[0]}x{size[1]} pixels, over the limit of {limits.max_pixels}",
            size=size,
        )
    bgr = decode(data)
    if bgr is None:
        return Analysis(ReasonCode.IMAGE_CORRUPT, "not a readable image", size=size)
    h, w = bgr.shape[:2]
    size = (w, h)
    if w * h > limits.max_pixels:  # a header PIL could not read, but OpenCV could
        return Analysis(
            ReasonCode.IMAGE_TOO_LARGE, f"{w}x{h} pixels, over {limits.max_pixels}", size=size
        )
    scale = 1.0
    if max(w, h) > limits.work_max_side:
        scale = limits.work_max_side / max(w, h)
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    frame_hash = phash(gray)
    brightness = float(gray.mean())
    if brightness < limits.min_brightness:
        return Analysis(
            ReasonCode.FACE_TOO_DARK,
            f"mean brightness {brightness:.0f} of 255, under {limits.min_brightness:.0f}",
            phash=frame_hash,
            brightness=brightness,
            size=size,
        )
    fr = load_models()
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    # Without upsampling HOG finds faces of about 80 px and up, four times faster; a frame
    # where it finds none is searched again upsampled, so a small face is still found.
    boxes: list[Box] = [tuple(b) for b in fr.face_locations(rgb, 0, "hog")]
    if not boxes and limits.upsample:
        boxes = [tuple(b) for b in fr.face_locations(rgb, limits.upsample, "hog")]
    common: dict[str, Any] = {
        "phash": frame_hash,
        "faces": len(boxes),
        "brightness": brightness,
        "size": size,
    }
    if not boxes:
        return Analysis(ReasonCode.FACE_NOT_FOUND, "no face found", **common)
    if len(boxes) > 1:
        return Analysis(ReasonCode.FACE_MULTIPLE, f"{len(boxes)} faces found", **common)
    box = boxes[0]
    face_px = round((box[2] - box[0]) / scale)
    if face_px < limits.min_face_px:
        return Analysis(
            ReasonCode.FACE_TOO_SMALL,
            f"face {face_px} px tall, under {limits.min_face_px}",
            box=box,
            **common,
        )
    sharp = sharpness(gray, box)
    if sharp < limits.min_sharpness:
        return Analysis(
            ReasonCode.FACE_BLURRY,
            f"sharpness {sharp:.1f}, under {limits.min_sharpness:.1f}",
            box=box,
            sharpness=sharp,
            **common,
        )
    encodings = fr.face_encodings(rgb, [box])
    if not encodings:  # dlib found no landmarks in a box it detected: treat as no face
        return Analysis(ReasonCode.FACE_NOT_FOUND, "no landmarks in the face box", **common)
    encoding = np.asarray(encodings[0], dtype=np.float64)
    return Analysis(ReasonCode.OK, "", encoding=encoding, box=box, sharpness=sharp, **common)


def warm_up() -> None:
    """Pool initializer: load the models before the first real frame arrives."""
    load_models()
