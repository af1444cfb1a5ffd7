"""Perceptual hash of a frame, for the replay defence.

A 256-bit DCT hash (pHash): the frame is shrunk to 64 x 64 grey, transformed, and the 16 x 16
lowest frequencies (less the DC term's influence, through the median) give one bit each. A JPEG
re-encoded, rescaled or slightly re-toned keeps almost all of its bits; a new exposure of a
live scene does not, because noise, pose and light move the low frequencies too. 256 bits,
not the usual 64, give that second case more room to differ.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
_SIDE = 64
_KEEP = 16


def phash(gray: npt.NDArray[Any]) -> bytes:
    small = cv2.resize(gray, (_SIDE, _SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:_KEEP, :_KEEP].flatten()
    median = float(np.median(low[1:]))
    bits = low > median
    return bytes(np.packbits(bits).tobytes())


def hamming(a: bytes, b: bytes) -> int:
    x = np.frombuffer(a, dtype=np.uint8) ^ np.frombuffer(b, dtype=np.uint8)
    return int(np.unpackbits(x).sum())


def nearest(table: npt.NDArray[np.uint64], h: bytes) -> tuple[int, int]:
    """Index and distance of the closest row of ``table`` (rows of 4 uint64) to ``h``."""
    if len(table) == 0:
        return -1, HASH_BITS + 1
    q = np.frombuffer(h, dtype=np.uint64)
    dist = np.bitwise_count(table ^ q).sum(axis=1)
    i = int(np.argmin(dist))
    return i, int(dist[i])
