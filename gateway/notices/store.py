"""Must-read notices in the store: the notices, who must read them, the receipts, and what the
bridge still has to upload.

Everything lives in the store (tables ``notices``, ``notice_targets``, ``notice_devices``,
schema v8) because three processes touch it: ``tack notices send`` creates notices while the
gateway runs, the gateway publishes lists and records receipts, and the bridge uploads them.
A device's list is published when its ``version`` is ahead of the ``published_version``, so a
change made in any process reaches the device without the processes talking to each other.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from devices.protocol import NoticeItem
from devices.protocol.limits import MAX_NOTICE_ITEMS
from gateway.store.database import write_transaction
from gateway.store.errors import StoreError
from gateway.store.records import now_ms


class UploadState:
    NONE = "none"  # no receipt yet
    PENDING = "pending"  # read; the bridge has not uploaded the receipt yet
    SYNCED = "synced"  # the backend has it
    FAILED = "failed"  # refused for good by the backend; kept with its reason


@dataclass(frozen=True, slots=True)
class Notice:
    notice_id: str
    title: str
    text: str
    sender: str | None
    created_ts_ms: int

    def item(self) -> NoticeItem:
        """As a device is sent it (``cmd/notice``)."""
        return NoticeItem(self.notice_id, self.title, self.text, self.created_ts_ms, self.sender)


@dataclass(frozen=True, slots=True)
class Target:
    """One device that must read one notice, and what became of it."""

    notice_id: str
    device_id: str
    sent_ts_ms: int | None
    receipt_ts_ms: int | None
    receipt_by: str | None
    receipt_person_id: str | None
    upload_state: str
    upload_error: str | None


@dataclass(frozen=True, slots=True)
class Unread:
    """A notice a device has not had acknowledged yet (``tack notices``)."""

    notice_id: str
    title: str
    device_id: str
    created_ts_ms: int
    sent_ts_ms: int | None


@dataclass(frozen=True, slots=True)
class OutReceipt:
    """A receipt as the bridge uploads it."""

    notice_id: str
    device_id: str
    receipt_ts_ms: int
    device_ts_ms: int | None
    by: str | None
    person_id: str | None
    msg_id: str | None
    attempts: int

    @property
    def idempotency_key(self) -> str:
        """Stable for ever: one receipt per notice and device is ever uploaded."""
        return f"{self.notice_id}:{self.device_id}"


def new_notice_id() -> str:
    """``n-`` and 8 hex digits: short enough to type in ``tack notices show``."""
    return f"n-{secrets.token_hex(4)}"


async def create_notice(
    db: aiosqlite.Connection,
    *,
    title: str,
    text: str,
    sender: str | None,
    device_ids: Sequence[str],
    notice_id: str | None = None,
    created_ts_ms: int | None = None,
) -> Notice:
    """Store a notice for ``device_ids`` and mark their lists for publishing, in one
    transaction: a device never gets half a send. Checks nothing: callers check the text and
    the devices (:mod:`gateway.notices.service`, ``send_notice``)."""
    stamp = now_ms() if created_ts_ms is None else created_ts_ms
    for _ in range(5):
        nid = notice_id or new_notice_id()
        try:
            async with write_transaction(db, f"storing notice {nid}"):
                await db.execute(
                    "INSERT INTO notices (notice_id, title, text, sender, created_ts_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (nid, title, text, sender, stamp),
                )
                await db.executemany(
                    "INSERT INTO notice_targets (notice_id, device_id) VALUES (?, ?)",
                    [(nid, d) for d in dict.fromkeys(device_ids)],
                )
                await _bump(db, device_ids)
        except StoreError as exc:
            if notice_id is None and isinstance(exc.__cause__, sqlite3.IntegrityError):
                continue  # a random id taken already: draw another
            raise
        return Notice(nid, title, text, sender, stamp)
    raise StoreError("could not find a free notice id in 5 tries")


async def _bump(db: aiosqlite.Connection, device_ids: Sequence[str]) -> None:
    """Say a device's list changed (inside a write transaction)."""
    await db.executemany(
        "INSERT INTO notice_devices (device_id, version) VALUES (?, 1)"
        " ON CONFLICT (device_id) DO UPDATE SET version = version + 1",
        [(d,) for d in dict.fromkeys(device_ids)],
    )


async def mark_all_due(db: aiosqlite.Connection) -> None:
    """Every device that ever had a notice gets its list published again (gateway start, a
    new broker connection: the broker may have lost the retained copies)."""
    async with write_transaction(db, "marking notice lists for publishing"):
        await db.execute("UPDATE notice_devices SET version = version + 1")


async def mark_due(db: aiosqlite.Connection, device_id: str) -> bool:
    """One device's list is to be published again (its birth); False when it never had a
    notice, so devices without notices are never sent an empty list."""
    async with write_transaction(db, f"marking the notices of {device_id} for publishing"):
        cur = await db.execute(
            "UPDATE notice_devices SET version = version + 1 WHERE device_id = ?", (device_id,)
        )
    return cur.rowcount > 0


async def due_devices(db: aiosqlite.Connection) -> list[tuple[str, int]]:
    """``(device_id, version)`` of every list changed since it was last published."""
    async with db.execute(
        "SELECT device_id, version FROM notice_devices WHERE version > published_version"
        " ORDER BY device_id"
    ) as cur:
        return [(str(d), int(v)) for d, v in await cur.fetchall()]


async def device_notices(
    db: aiosqlite.Connection, device_id: str, limit: int = MAX_NOTICE_ITEMS
) -> list[Notice]:
    """The device's unread notices, oldest first, at most ``limit`` (the next one takes a
    place when one is read: a must-read is never pushed out by a newer one)."""
    async with db.execute(
        "SELECT n.notice_id, n.title, n.text, n.sender, n.created_ts_ms FROM notice_targets t"
        " JOIN notices n ON n.notice_id = t.notice_id"
        " WHERE t.device_id = ? AND t.receipt_ts_ms IS NULL"
        " ORDER BY n.created_ts_ms, n.notice_id LIMIT ?",
        (device_id, limit),
    ) as cur:
        return [Notice(*row) for row in await cur.fetchall()]


async def mark_published(
    db: aiosqlite.Connection, device_id: str, version: int, notice_ids: Sequence[str]
) -> None:
    """The list of ``version`` went out with ``notice_ids``: those count as sent from now (the
    first time only). A change made meanwhile has a higher version and is published next."""
    stamp = now_ms()
    async with write_transaction(db, f"marking the notices of {device_id} published"):
        await db.execute(
            "UPDATE notice_devices SET published_version = max(published_version, ?),"
            " published_ts_ms = ? WHERE device_id = ?",
            (version, stamp, device_id),
        )
        await db.executemany(
            "UPDATE notice_targets SET sent_ts_ms = ?"
            " WHERE notice_id = ? AND device_id = ? AND sent_ts_ms IS NULL",
            [(stamp, n, device_id) for n in notice_ids],
        )


async def is_target(db: aiosqlite.Connection, notice_id: str, device_id: str) -> bool:
    async with db.execute(
        "SELECT 1 FROM notice_targets WHERE notice_id = ? AND device_id = ?",
        (notice_id, device_id),
    ) as cur:
        return await cur.fetchone() is not None


async def record_receipt(
    db: aiosqlite.Connection,
    *,
    notice_id: str,
    device_id: str,
    device_ts_ms: int,
    by: str | None,
    msg_id: str,
) -> bool:
    """Record that the notice was read on the device; True for the first receipt, which is
    the one kept (and uploaded). A later one, or the same one again, changes nothing. ``by``
    is resolved to a person through the roster's cards and employee numbers, when it can be."""
    async with write_transaction(db, f"recording the receipt of {notice_id} on {device_id}"):
        cur = await db.execute(
            "UPDATE notice_targets SET receipt_ts_ms = ?, receipt_device_ts_ms = ?,"
            " receipt_by = ?, receipt_msg_id = ?, upload_state = 'pending',"
            " receipt_person_id = (SELECT person_id FROM people"
            "   WHERE ? IS NOT NULL AND (card = ? OR employee_no = ?)"
            "   ORDER BY active DESC, person_id LIMIT 1)"
            " WHERE notice_id = ? AND device_id = ? AND receipt_ts_ms IS NULL",
            (now_ms(), device_ts_ms, by, msg_id, by, by, by, notice_id, device_id),
        )
        first = cur.rowcount > 0
        if first:
            await _bump(db, [device_id])
    return first


async def unread(db: aiosqlite.Connection) -> list[Unread]:
    """Every notice not yet acknowledged on a device, oldest first."""
    async with db.execute(
        "SELECT n.notice_id, n.title, t.device_id, n.created_ts_ms, t.sent_ts_ms"
        " FROM notice_targets t JOIN notices n ON n.notice_id = t.notice_id"
        " WHERE t.receipt_ts_ms IS NULL ORDER BY n.created_ts_ms, n.notice_id, t.device_id"
    ) as cur:
        return [Unread(*row) for row in await cur.fetchall()]


async def get_notice(db: aiosqlite.Connection, notice_id: str) -> Notice | None:
    async with db.execute(
        "SELECT notice_id, title, text, sender, created_ts_ms FROM notices WHERE notice_id = ?",
        (notice_id,),
    ) as cur:
        row = await cur.fetchone()
    return Notice(*row) if row else None


async def targets(db: aiosqlite.Connection, notice_id: str) -> list[Target]:
    async with db.execute(
        "SELECT notice_id, device_id, sent_ts_ms, receipt_ts_ms, receipt_by, receipt_person_id,"
        " upload_state, upload_error FROM notice_targets WHERE notice_id = ? ORDER BY device_id",
        (notice_id,),
    ) as cur:
        return [Target(*row) for row in await cur.fetchall()]


# -- upload (cloud_bridge.receipts) --------------------------------------------------------------


async def pending_receipts(db: aiosqlite.Connection, limit: int) -> list[OutReceipt]:
    """Receipts the backend does not have yet, in the order they were read."""
    async with db.execute(
        "SELECT notice_id, device_id, receipt_ts_ms, receipt_device_ts_ms, receipt_by,"
        " receipt_person_id, receipt_msg_id, upload_attempts FROM notice_targets"
        " INDEXED BY notice_targets_upload WHERE upload_state = 'pending'"
        " ORDER BY receipt_ts_ms, notice_id, device_id LIMIT ?",
        (limit,),
    ) as cur:
        return [OutReceipt(*row) for row in await cur.fetchall()]


def _keys(receipts: Sequence[OutReceipt]) -> list[tuple[str, str]]:
    return [(r.notice_id, r.device_id) for r in receipts]


async def mark_receipts_synced(db: aiosqlite.Connection, receipts: Sequence[OutReceipt]) -> None:
    stamp = now_ms()
    async with write_transaction(db, "marking receipts uploaded"):
        await db.executemany(
            "UPDATE notice_targets SET upload_state = 'synced', uploaded_ts_ms = ?,"
            " upload_error = NULL, upload_attempts = upload_attempts + 1"
            " WHERE notice_id = ? AND device_id = ?",
            [(stamp, *k) for k in _keys(receipts)],
        )


async def mark_receipts_failed(
    db: aiosqlite.Connection, failures: Sequence[tuple[OutReceipt, str]]
) -> None:
    """Refused for good by the backend: kept with its reason, not retried."""
    async with write_transaction(db, "marking receipts refused"):
        await db.executemany(
            "UPDATE notice_targets SET upload_state = 'failed', upload_error = ?,"
            " upload_attempts = upload_attempts + 1 WHERE notice_id = ? AND device_id = ?",
            [(reason[:500], r.notice_id, r.device_id) for r, reason in failures],
        )


async def note_receipt_attempt(
    db: aiosqlite.Connection, receipts: Sequence[OutReceipt], error: str
) -> None:
    """A transient failure: the receipts stay pending; the attempt and its error are kept."""
    async with write_transaction(db, "noting a receipt upload attempt"):
        await db.executemany(
            "UPDATE notice_targets SET upload_attempts = upload_attempts + 1, upload_error = ?"
            " WHERE notice_id = ? AND device_id = ?",
            [(error[:500], *k) for k in _keys(receipts)],
        )


async def counts(db: aiosqlite.Connection) -> dict[str, int]:
    """For ``tack status``: devices yet to acknowledge a notice, and receipts by upload state
    (``pending``, ``synced``, ``failed``)."""
    async with db.execute("SELECT count(*) FROM notice_targets WHERE receipt_ts_ms IS NULL") as cur:
        row = await cur.fetchone()
    result = {"unread": int(row[0]) if row else 0}
    async with db.execute(
        "SELECT upload_state, count(*) FROM notice_targets WHERE upload_state != 'none'"
        " GROUP BY upload_state"
    ) as cur:
        result.update({str(r[0]): int(r[1]) async for r in cur})
    return result
