"""Must-read notices on the device (docs/notices.md): reading ``cmd/notice`` and writing the
body of the ``receipt`` event a person's acknowledgement sends (docs/protocol.md, sections 4
and 5).

Both the terminal and the panel show notices, but rarely: this module is imported only when a
notice arrives or is acknowledged (``tack.codec_panel`` loads it for a receipt body), and can
be unloaded again (``tack.unload``), so neither application keeps it on its heap all day. The
reference is ``devices.protocol.decode_notice``; both are tested against the same vectors.
"""

from micropython import const

from tack import why
from tack.codec import MAX_SAFE_INT, _keys, _str, load, require, valid_id

_MAX_ITEMS = const(4)
_MAX_ID_CHARS = const(64)
_MAX_CREDENTIAL_CHARS = const(32)


def body(kind, body, add):
    """Append the canonical JSON of a receipt body (``notice``, then ``by`` when given), less
    its closing brace, to a message being built with ``add``; ValueError for what the gateway
    would refuse (it would refuse the whole receipt, and the acknowledgement would be lost)."""
    _keys(body, " notice by ", "receipt")
    notice = body.get("notice")
    if not valid_id(notice, _MAX_ID_CHARS):
        raise ValueError(why("co_notice", notice))
    add('{"notice":')
    add(_str(notice, "notice"))
    by = body.get("by")
    if by is not None:
        if not valid_id(by, _MAX_CREDENTIAL_CHARS):
            raise ValueError(why("co_by", by))
        add(',"by":')
        add(_str(by, "by"))


def decode_notice(payload):
    """Read a ``cmd/notice`` tolerantly (docs section 5, "Reading notices").

    Returns ``{"ts", "items": [{"id", "title", "text", "ts", "from"}], "dropped"}``. An empty
    payload (a cleared retained topic) is no notices. Unreadable items (no valid id, no string
    text) are dropped and counted; the rest keep their order (oldest first) and the first four
    are kept. Only a missing or non-list ``items`` is refused: the device keeps what it had.
    """
    if not len(payload):
        return {"ts": None, "items": [], "dropped": 0}
    data = load(payload)
    raw_items = require(data, "items", list, "an array")
    items = []  # type: list[dict]
    dropped = 0
    for raw in raw_items:
        if type(raw) is not dict:
            dropped += 1
            continue
        nid, text = raw.get("id"), raw.get("text")
        if type(text) is not str or not valid_id(nid, _MAX_ID_CHARS):
            dropped += 1
            continue
        if len(items) == _MAX_ITEMS:
            dropped += 1
            continue
        title, ts, frm = raw.get("title"), raw.get("ts"), raw.get("from")
        items.append({
            "id": nid,
            "title": title if type(title) is str else "",
            "text": text,
            "ts": ts if _uint53(ts) else None,
            "from": frm if type(frm) is str else None,
        })
    ts = data.get("ts")
    return {"ts": ts if _uint53(ts) else None, "items": items, "dropped": dropped}


def _uint53(value):
    return type(value) is int and 0 <= value <= MAX_SAFE_INT
