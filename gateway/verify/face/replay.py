"""Replay defence from single frames: a frame already used for one punch is refused for another.

What it stops: the same JPEG sent again under a new message id (a captured frame pushed by a
rogue client, or a terminal bug that reuses its last frame), and near-copies of it: re-encoded
(JPEG quality 60), rescaled, lightly re-toned or with sensor-like noise added, which on the
shared photo set move the 256-bit hash by at most 8 bits, against at least 68 between any two
different photos (``max_bits`` defaults to 24).

What it does not stop (docs/attendance.md, "Face"): a printed photo or a phone screen held up to
the camera, a video replayed to it, or a mask. Each of those is a *new* exposure whose hash
differs like any live frame's; telling them from a live face needs liveness evidence a single
RGB frame does not carry (depth, infrared, or a challenge such as "blink" or "turn your head").
Nor does it catch a replayed frame older than ``window`` (the hashes are kept that long) or one
altered enough to move the hash: a crop of even 4 px on a 150 px photo moves it by up to 86
bits, and mirroring or rotating moves it more, while the face encoding hardly changes, so such
a copy may still match.

A resend of the *same* punch (same device and message id) is not a replay: devices resend
until they hear an ack.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite
import numpy as np
import numpy.typing as npt

from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.verify.face.phash import HASH_BITS, HASH_BYTES

_WORDS = HASH_BYTES // 8


@dataclass(frozen=True, slots=True)
class ReplayHit:
    device_id: str
    msg_id: str
    distance: int  # Hamming distance in bits, of HASH_BITS


class ReplayGuard:
    def __init__(
        self, db: aiosqlite.Connection, *, max_bits: int = 24, window_ms: int = 30 * 86_400_000
    ) -> None:
        if not 0 <= max_bits < HASH_BITS // 2:
            raise ValueError(f"max_bits must be 0 ... {HASH_BITS // 2 - 1}")
        self._db = db
        self.max_bits = max_bits
        self.window_ms = window_ms
        self._hashes: npt.NDArray[np.uint64] = np.zeros((64, _WORDS), dtype=np.uint64)
        self._ts: npt.NDArray[np.int64] = np.zeros(64, dtype=np.int64)
        self._keys: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    async def load(self) -> None:
        """Read the hashes of the last ``window`` from the store (after a restart)."""
        since = now_ms() - self.window_ms
        async with self._db.execute(
            "SELECT device_id, msg_id, phash, received_ts_ms FROM face_frames"
            " WHERE received_ts_ms >= ? ORDER BY received_ts_ms",
            (since,),
        ) as cur:
            rows = list(await cur.fetchall())
        self._keys, self._index = [], {}
        self._hashes = np.zeros((max(64, len(rows)), _WORDS), dtype=np.uint64)
        self._ts = np.zeros(len(self._hashes), dtype=np.int64)
        for device_id, msg_id, h, ts in rows:
            self._append((str(device_id), str(msg_id)), bytes(h), int(ts))

    def _append(self, key: tuple[str, str], h: bytes, ts: int) -> None:
        n = len(self._keys)
        if n == len(self._hashes):
            self._compact(now_ms() - self.window_ms)
            n = len(self._keys)
            if n >= len(self._hashes) // 2:
                self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
                self._ts = np.concatenate([self._ts, np.zeros_like(self._ts)])
        self._hashes[n] = np.frombuffer(h, dtype=np.uint64)
        self._ts[n] = ts
        self._index[key] = n
        self._keys.append(key)

    def _compact(self, since: int) -> None:
        n = len(self._keys)
        keep = np.flatnonzero(self._ts[:n] >= since)
        if len(keep) == n:
            return
        m = len(keep)
        self._hashes[:m] = self._hashes[keep]
        self._ts[:m] = self._ts[keep]
        self._keys = [self._keys[i] for i in keep]
        self._index = {k: i for i, k in enumerate(self._keys)}

    def check_and_claim(self, device_id: str, msg_id: str, h: bytes) -> ReplayHit | None:
        """The earlier punch this frame repeats, or ``None`` after claiming the frame for
        ``(device_id, msg_id)``. Synchronous on purpose: no other check can slip between the
        look-up and the claim. Call :meth:`persist` afterwards to make the claim durable."""
        if len(h) != HASH_BYTES:
            raise ValueError(f"a frame hash has {HASH_BYTES} bytes")
        key = (device_id, msg_id)
        n = len(self._keys)
        if n:
            since = now_ms() - self.window_ms
            q = np.frombuffer(h, dtype=np.uint64)
            dist = np.bitwise_count(self._hashes[:n] ^ q).sum(axis=1)
            dist[self._ts[:n] < since] = HASH_BITS
            own = self._index.get(key)
            if own is not None:
                dist[own] = HASH_BITS  # the same punch sent again
            i = int(np.argmin(dist))
            if int(dist[i]) <= self.max_bits:
                other = self._keys[i]
                return ReplayHit(other[0], other[1], int(dist[i]))
            if own is not None:
                return None
        self._append(key, h, now_ms())
        return None

    async def persist(self, device_id: str, msg_id: str, h: bytes, person_id: str | None) -> None:
        async with write_transaction(self._db, "storing a frame hash"):
            await self._db.execute(
                "INSERT OR IGNORE INTO face_frames (device_id, msg_id, phash, person_id,"
                " received_ts_ms) VALUES (?, ?, ?, ?, ?)",
                (device_id, msg_id, h, person_id, now_ms()),
            )
