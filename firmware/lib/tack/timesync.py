"""``cmd/time``: the gateway's clock and the site's UTC offset (docs/protocol.md, "Time").

It comes on each connect and every few hours, so its code is loaded for it and let go after
(``tack.unload``), rather than held on a heap that needs the room for punches.
"""

from tack import why
from tack.codec import MAX_SAFE_INT, ProtocolError, load, require


def decode_time(payload):
    """``cmd/time`` -> ``(ts, tz, tz_next)``: the gateway's clock in ms since 1970, the site's
    offset from UTC in minutes and its next change ``(ms, minutes)``. ``ts`` is checked strictly
    (a wrong clock is worse than none); ``tz_min`` and ``tz_next`` tolerantly (wrong reads as
    absent: None); ``v`` and other fields are not looked at."""
    data = load(payload)
    ts = require(data, "ts", int, "an integer")
    if not 0 <= ts <= MAX_SAFE_INT:
        raise ProtocolError("invalid_value", "ts", why("co_ts"))
    tz = data.get("tz_min")
    if not _is_offset(tz):
        return ts, None, None
    nxt = data.get("tz_next")
    if type(nxt) is list and len(nxt) == 2 and type(nxt[0]) is int and 0 <= nxt[0] <= MAX_SAFE_INT and _is_offset(nxt[1]):
        return ts, tz, (nxt[0], nxt[1])
    return ts, tz, None


def _is_offset(v):
    return type(v) is int and -720 <= v <= 840


def apply(link, payload):
    """Set the device's clock (and offset, when the gateway sends one); ProtocolError when the
    payload is unreadable, and the clock stays as it was."""
    ts, tz, tz_next = decode_time(payload)
    clock = link.clock
    shift = clock.sync(ts)
    if tz is not None:
        clock.tz = tz
        clock.tz_next = tz_next
    link.hal.event("time", {"shift_ms": shift})
