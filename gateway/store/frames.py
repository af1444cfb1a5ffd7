"""Camera frames: the JPEG a terminal took with a punch, stored under the punch's message id.

A frame is stored once: the device sends it again with every resend of its punch, and the copy
is ignored. Frames are kept until retention removes them with their records (the face check and
the admin UI read them from here).
"""

from __future__ import annotations

import aiosqlite

from devices.protocol import Frame
from gateway.store.database import write_transaction
from gateway.store.records import now_ms


async def store_frame(db: aiosqlite.Connection, frame: Frame) -> bool:
    """Insert the frame; ``False`` when this device already sent one for this message."""
    async with write_transaction(db, f"storing the frame of {frame.device_id}/{frame.msg_id}"):
        cur = await db.execute(
            "INSERT OR IGNORE INTO frames (device_id, msg_id, sha256, bytes, data, received_ts_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (frame.device_id, frame.msg_id, frame.sha256, len(frame.data), frame.data, now_ms()),
        )
        return cur.rowcount == 1


async def load_frame(db: aiosqlite.Connection, device_id: str, msg_id: str) -> Frame | None:
    async with db.execute(
        "SELECT sha256, data FROM frames WHERE device_id = ? AND msg_id = ?", (device_id, msg_id)
    ) as cur:
        row = await cur.fetchone()
    return Frame(device_id, msg_id, str(row[0]), bytes(row[1])) if row else None
