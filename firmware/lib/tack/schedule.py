"""The meeting-room schedule (``cmd/schedule``, docs section 5): only the panel imports it.

Read tolerantly, as the reference ``devices.protocol.decode_schedule`` reads it, and tested
against the same vectors (firmware/tests/test_codec.py).
"""

from micropython import const

from tack.codec import MAX_SAFE_INT, load, require, valid_id

_MAX_BOOKING_CHARS = const(64)
_MAX_SCHEDULE_ITEMS = const(24)


def _uint53(value):
    return type(value) is int and 0 <= value <= MAX_SAFE_INT


def decode_schedule(payload):
    """Read a ``cmd/schedule`` tolerantly (docs section 5, "Reading a schedule").

    Returns ``{"room", "ts", "items": [{"id", "title", "start", "end", "by", "in", "st"}],
    "dropped", "open", "rel", "priv"}``:
    unreadable items are dropped and counted, the rest put in order of start (stable) and the
    first 24 kept. Only a missing or non-list ``items`` is refused: the panel keeps what it had.
    """
    data = load(payload)
    raw_items = require(data, "items", list, "an array")
    room, ts = data.get("room"), data.get("ts")
    items = []  # type: list[dict]
    dropped = 0
    for raw in raw_items:
        if type(raw) is not dict:
            dropped += 1
            continue
        bid, start, end = raw.get("id"), raw.get("start"), raw.get("end")
        if type(start) is not int or type(end) is not int or not 0 <= start < end <= MAX_SAFE_INT:
            dropped += 1
            continue
        if not valid_id(bid, _MAX_BOOKING_CHARS):
            dropped += 1
            continue
        title, by, st = raw.get("title"), raw.get("by"), raw.get("st")
        item = {
            "id": bid,
            "title": title if type(title) is str else "",
            "start": start,
            "end": end,
            "by": by if type(by) is str else None,
            "in": raw.get("in") is True,
            "st": st if type(st) is str else None,
        }
        # Insertion sort: stable (MicroPython's list.sort is not), and there are few items.
        i = len(items)
        items.append(item)
        while i and items[i - 1]["start"] > start:
            items[i] = items[i - 1]
            i -= 1
        items[i] = item
    if len(items) > _MAX_SCHEDULE_ITEMS:
        dropped += len(items) - _MAX_SCHEDULE_ITEMS
        del items[_MAX_SCHEDULE_ITEMS:]
    op, rel = data.get("open"), data.get("rel")
    return {
        "room": room if type(room) is str else "",
        "ts": ts if _uint53(ts) else None,
        "items": items,
        "dropped": dropped,
        "open": op if type(op) is int and 0 <= op <= 240 else None,
        "rel": rel if type(rel) is int and 0 <= rel <= 240 else None,
        "priv": data.get("priv") is True,
    }
