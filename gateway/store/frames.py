"""Camera frames: the JPEG a terminal took with a punch, stored under the punch's message id.

A frame is stored once: the device sends it again with every resend of its punch, and the copy
is ignored. With a keyring the JPEG is sealed (gateway/security/sealed_fields.py). Frames are
kept until retention removes them (``retention.face_images_days``); the face check and the admin
UI read them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiosqlite

from devices.protocol import Frame
from gateway.security.sealed_fields import open_frame, seal_frame
from gateway.store.database import write_transaction
from gateway.store.records import now_ms

if TYPE_CHECKING:
    from gateway.security.keyring import Keyring


async def store_frame(
    db: aiosqlite.Connection, frame: Frame, keyring: Keyring | None = None
) -> bool:
    """Insert the frame; ``False`` when this device already sent one for this message."""
    kid: str | None = None
    data = frame.data
    if keyring is not None:
        kid, data = seal_frame(keyring, frame.device_id, frame.msg_id, frame.data)
    async with write_transaction(db, f"storing the frame of {frame.device_id}/{frame.msg_id}"):
        cur = await db.execute(
            "INSERT OR IGNORE INTO frames (device_id, msg_id, sha256, bytes, data, received_ts_ms,"
            " key_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (frame.device_id, frame.msg_id, frame.sha256, len(frame.data), data, now_ms(), kid),
        )
        return cur.rowcount == 1


async def load_frame(
    db: aiosqlite.Connection, device_id: str, msg_id: str, keyring: Keyring | None = None
) -> Frame | None:
    async with db.execute(
        "SELECT sha256, data, key_id FROM frames WHERE device_id = ? AND msg_id = ?",
        (device_id, msg_id),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    data = open_frame(keyring, device_id, msg_id, row[2], bytes(row[1]))
    return Frame(device_id, msg_id, str(row[0]), data)
