"""Must-read notices (必达): ``cmd/notice``, what a device shows until a person acknowledges it.

The gateway publishes each device's pending notices **retained**, so a device that was offline
when a notice was sent finds it on the broker when it connects, and publishes the list again
whenever it changes; an empty list clears the device's screen. The acknowledgement comes back
as an event of kind ``receipt`` (:class:`devices.protocol.ReceiptBody`).

Read tolerantly, as a schedule is (:func:`devices.protocol.decode_schedule`): one unreadable
notice must not hide the others from the people who have to read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devices.protocol.codec import _is_uint53, _load_object, _require, dumps
from devices.protocol.limits import (
    MAX_CMD_BYTES,
    MAX_NOTICE_FROM_CHARS,
    MAX_NOTICE_ID_CHARS,
    MAX_NOTICE_ITEMS,
    MAX_NOTICE_TEXT_CHARS,
    MAX_NOTICE_TITLE_CHARS,
    PROTOCOL_VERSION,
)
from devices.protocol.topics import valid_id


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One must-read notice as a device shows it.

    ``ts_ms`` is when it was sent (ms since 1970), ``sender`` the sender's display name; as
    read by a device, either is None when the gateway's value was unreadable.
    """

    notice_id: str
    title: str
    text: str
    ts_ms: int | None
    sender: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.notice_id,
            "title": self.title,
            "text": self.text,
            "ts": self.ts_ms,
            "from": self.sender,
        }


@dataclass(frozen=True, slots=True)
class Notices:
    """Retained ``cmd/notice``: a device's pending notices, oldest first.

    As read by a device, ``ts_ms`` is None when the gateway's time was unreadable and
    ``dropped`` counts the items that were unreadable or beyond the four a device keeps.
    """

    ts_ms: int | None
    items: tuple[NoticeItem, ...] = ()
    dropped: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "ts": self.ts_ms,
            "items": [item.to_wire() for item in self.items],
        }


def check_notice_item(item: NoticeItem) -> None:
    """Refuse (``ValueError``, naming the problem) a notice a device would drop or cut."""
    if not valid_id(item.notice_id, MAX_NOTICE_ID_CHARS):
        raise ValueError(
            f"notice id {item.notice_id!r} must be 1-{MAX_NOTICE_ID_CHARS} of A-Z a-z 0-9 _ -"
        )
    if len(item.title) > MAX_NOTICE_TITLE_CHARS:
        raise ValueError(
            f"notice {item.notice_id!r}: title over {MAX_NOTICE_TITLE_CHARS} characters"
        )
    if not item.text.strip():
        raise ValueError(f"notice {item.notice_id!r}: the text is empty")
    if len(item.text) > MAX_NOTICE_TEXT_CHARS:
        raise ValueError(f"notice {item.notice_id!r}: text over {MAX_NOTICE_TEXT_CHARS} characters")
    if item.sender is not None and len(item.sender) > MAX_NOTICE_FROM_CHARS:
        raise ValueError(
            f"notice {item.notice_id!r}: sender over {MAX_NOTICE_FROM_CHARS} characters"
        )
    if not _is_uint53(item.ts_ms):
        raise ValueError(f"notice {item.notice_id!r}: ts must be an integer 0..2^53-1 ms")


def encode_notice(ts_ms: int, items: Sequence[NoticeItem]) -> bytes:
    """``cmd/notice`` for one device: its pending notices in the order given (oldest first).

    Refuses (``ValueError``) what a device would not show whole: more than four items, an item
    :func:`check_notice_item` refuses, or more than 8192 bytes in all (four long texts full of
    characters JSON escapes can get there: send fewer items). An empty ``items`` clears the
    device's notices.
    """
    if len(items) > MAX_NOTICE_ITEMS:
        raise ValueError(f"a device holds at most {MAX_NOTICE_ITEMS} notices, got {len(items)}")
    for item in items:
        check_notice_item(item)
    if not _is_uint53(ts_ms):
        raise ValueError(f"notice time must be an integer 0..2^53-1 ms, got {ts_ms!r}")
    payload = dumps(Notices(ts_ms=ts_ms, items=tuple(items)).to_wire())
    if len(payload) > MAX_CMD_BYTES:
        raise ValueError(
            f"notices are {len(payload)} bytes; the limit is {MAX_CMD_BYTES}: send fewer items"
        )
    return payload


def decode_notice(payload: bytes) -> Notices:
    """Read a ``cmd/notice`` as a device does.

    An empty payload (an operator clearing the retained topic) reads as no notices. Otherwise
    only ``items`` is required (a list; else ``missing_field``/``wrong_type``, and the device
    keeps what it had). An item that is not an object, has no valid ``id`` or has no string
    ``text`` is dropped and counted: there is nothing a person could acknowledge. A wrong-typed
    ``title`` reads as ``""``, ``from`` as null, ``ts`` as null. Items keep their wire order
    (oldest first) and the first four are kept; more count as dropped.
    """
    if not payload:
        return Notices(ts_ms=None)
    data = _load_object(payload, MAX_CMD_BYTES)
    raw_items = _require(data, "items", list)
    ts = data.get("ts")
    items: list[NoticeItem] = []
    dropped = 0
    for raw in raw_items:
        item = _notice_item(raw)
        if item is None:
            dropped += 1
        else:
            items.append(item)
    dropped += max(0, len(items) - MAX_NOTICE_ITEMS)
    return Notices(
        ts_ms=ts if _is_uint53(ts) else None,
        items=tuple(items[:MAX_NOTICE_ITEMS]),
        dropped=dropped,
    )


def _notice_item(raw: object) -> NoticeItem | None:
    if not isinstance(raw, dict):
        return None
    notice_id, text = raw.get("id"), raw.get("text")
    if not isinstance(notice_id, str) or not valid_id(notice_id, MAX_NOTICE_ID_CHARS):
        return None
    if not isinstance(text, str):
        return None
    title, ts, sender = raw.get("title"), raw.get("ts"), raw.get("from")
    return NoticeItem(
        notice_id=notice_id,
        title=title if isinstance(title, str) else "",
        text=text,
        ts_ms=ts if _is_uint53(ts) else None,
        sender=sender if isinstance(sender, str) else None,
    )
