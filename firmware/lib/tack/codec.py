"""Wire protocol v1 on the device (docs/protocol.md): what a running device sends and reads.

The reference is the CPython package ``devices.protocol``; both are tested against the vectors in
``devices/protocol/vectors/``. Encoding is written out by hand for the few shapes a device sends:
a resend must carry the same bytes as the first copy, and MicroPython neither keeps dict order nor
escapes ``\\b`` and ``\\f`` the way CPython's ``json.dumps`` does. Decoding uses ``json.loads`` and
reports the reason codes the reference reports, tolerantly where the protocol says so (acks,
time), so a newer gateway still reaches an older device.

Only what both applications need at run time is here, because every function and string of a
loaded module stays on the heap: the panel's schedule reader is ``tack.schedule`` and its event bodies (and the terminal's rare query's) ``tack.codec_panel``, and topic
parsing with the table of protocol limits (for tests and tools) is ``tack.protocol``. The limits
used here are ``const()`` (inlined, no heap); the vectors pin them.
"""

import json
import os
from binascii import hexlify

from micropython import const

from tack import why

_MAX_EVT_BYTES = const(8192)
_MAX_CMD_BYTES = const(8192)
_MAX_FRAME_BYTES = const(65536)
_MAX_LAT_E7 = const(900000000)
_MAX_LON_E7 = const(1800000000)
_MAX_GPS_ACC_M = const(100000)
# 2**53 - 1: not a small int on a 32-bit port, so not a const().
MAX_SAFE_INT = 9007199254740991

# Every reason code, one a line in the order of devices/protocol/reasons.py, is in
# tack/reasons.txt: read from flash per ack (known_reason), because as a string in the code the
# list would hold a KB of heap for good, and it grows with the protocol.
_REASONS_FILE = "/reasons.txt"
# Keep the message and send it again later:
TRANSIENT = " busy store_unavailable internal_error "
# The event kinds are tack.codec_panel.KINDS: only a kind other than punch needs the list.


class ProtocolError(ValueError):
    """A message that does not follow protocol v1: ``reason`` is a reason code, ``field`` the
    field it names (None when it names none), ``msg`` what a person reads in the log."""

    def __init__(self, reason, field=None, msg=""):
        super().__init__(msg or reason)
        self.reason = reason
        self.field = field
        self.msg = msg


def valid_id(value, limit):
    """1-``limit`` of A-Z a-z 0-9 _ -, starting with a letter or digit (docs section 3)."""
    if type(value) is not str or not 0 < len(value) <= limit:
        return False
    first = True
    # Bytes, not characters: iterating a str makes each character a qstr, never freed.
    for c in value.encode():
        if not (97 <= c <= 122 or 65 <= c <= 90 or 48 <= c <= 57):
            if first or (c != 95 and c != 45):  # _ -
                return False
        first = False
    return True


def _is_one_of(value, words):
    """True if ``value`` is one of the space-separated ``words`` (a str starting and ending
    with a space), as a whole word."""
    return type(value) is str and value != "" and " " not in value and words.find(" " + value + " ") >= 0


def known_reason(reason):
    """True if ``reason`` is exactly one of the protocol's reason codes (tack/reasons.txt).
    Without the file every reason is taken as given: holding every message for ever would be
    worse than trusting the gateway."""
    if type(reason) is not str or reason == "":
        return False
    line = reason + "\n"
    try:
        with open(__file__.rsplit("/", 1)[0] + _REASONS_FILE) as f:
            for known in f:
                if known == line:
                    return True
    except OSError:
        return True
    return False


# --- encoding -------------------------------------------------------------------------------


def _str(value, what):
    """A JSON string as CPython's compact ``json.dumps(ensure_ascii=False)`` writes it."""
    if type(value) is not str:
        raise ValueError(why("co_str", what, value))
    # Bytes, not characters: iterating a str makes each character a qstr, never freed.
    b = value.encode()
    for c in b:
        if c < 32 or c == 34 or c == 92:
            break
    else:
        return '"' + value + '"'
    out = bytearray(b'"')
    for c in b:
        if c == 34 or c == 92:  # " and \
            out.append(92)
            out.append(c)
        elif c < 32:
            if 8 <= c <= 13 and c != 11:
                out.append(92)
                out.append(b"btn_fr"[c - 8])
            else:
                out.extend(b"\\u%04x" % c)
        else:
            out.append(c)
    out.append(34)
    return out.decode()


def _int(value, what, low=0, high=MAX_SAFE_INT):
    # A float would print differently here and in CPython, so the wire has none (docs section 2).
    if type(value) is not int:
        raise ValueError(why("co_int", what, value))
    if not low <= value <= high:
        raise ValueError(why("co_range", what, low, high, value))
    return "%d" % value


def _keys(body, allowed, what):
    for key in body:
        if not _is_one_of(key, allowed):
            raise ValueError(why("co_keys", what, allowed.strip(), key))


def encode_event(msg_id, dev, seq, ts_ms, kind, body):
    """The canonical bytes of an event envelope (docs section 4).

    ``body`` is a dict: ``{"card": c}`` or ``{"emp": e}``, with optional ``"gps"``
    (``{"lat", "lon", "acc"?, "ts"?, "prov"?, "mock"?}``, integers but prov and mock) and ``"photo"`` (``{"len", "sha256"}``) for a
    punch; ``{"card" or "emp": c, "q": "leave"}`` for a query; ``{"booking": b}`` for a checkin;
    ``{"button": name, "booking"?, "minutes"?}``. Numbers
    out of their range are refused here (ValueError) rather than by the gateway, which would
    drop the whole punch for a bad gps fix.
    """
    # A kind other than punch is checked by tack.codec_panel, before anything is returned.
    # Pieces joined once: a device's heap is better spent than on a copy per field.
    out = ['{"v":1,"id":', _str(msg_id, "msg id"), ',"dev":', _str(dev, "device id"), ',"seq":',
           _int(seq, "seq"), ',"ts":', _int(ts_ms, "ts"), ',"kind":"', kind, '","body":']
    add = out.append
    if kind == "punch":
        _keys(body, " card emp gps photo ", "punch")
        if ("card" in body) == ("emp" in body):
            raise ValueError(why("co_cred"))
        cred = "card" if "card" in body else "emp"
        # The credential is not checked here: a badly read card is for the gateway to refuse,
        # with a verdict the person can see.
        add('{"%s":' % cred)
        add(_str(body[cred], cred))
        gps = body.get("gps")
        if gps is not None:
            # A receiver's fix may carry more (satellites): only the protocol's fields are sent.
            # lat and lon in 1e-7 degrees, acc in metres, ts in Unix ms (docs section 4).
            add(',"gps":{"lat":')
            add(_int(gps["lat"], "gps lat", -_MAX_LAT_E7, _MAX_LAT_E7))
            add(',"lon":')
            add(_int(gps["lon"], "gps lon", -_MAX_LON_E7, _MAX_LON_E7))
            if gps.get("acc") is not None:
                add(',"acc":')
                add(_int(gps["acc"], "gps acc", 0, _MAX_GPS_ACC_M))
            if gps.get("ts") is not None:
                add(',"ts":')
                add(_int(gps["ts"], "gps ts"))
            if gps.get("prov") is not None:
                add(',"prov":')
                add(_str(gps["prov"], "gps prov"))
            if gps.get("mock") is not None:
                add(',"mock":true' if gps["mock"] else ',"mock":false')
            add("}")
        photo = body.get("photo")
        if photo is not None:
            digest = photo["sha256"]
            if type(digest) is not str or len(digest) != 64 or digest.encode().strip(b"0123456789abcdef"):
                raise ValueError(why("co_sha"))
            add(',"photo":{"len":')
            add(_int(photo["len"], "photo len", 1, _MAX_FRAME_BYTES))
            add(',"sha256":"')
            add(digest)
            add('"')
            add("}")
    else:
        # The panel's bodies and the terminal's rare query: a terminal loads their code only
        # for a query, and tack.query unloads it again.
        from tack import codec_panel

        codec_panel.body(kind, body, add)
    add("}}")
    return "".join(out).encode()


def encode_presence(online, boot, fw=None, ts_ms=None):
    """``state/online``: the birth message (online True) or the last will (docs section 6)."""
    out = '{"v":1,"online":%s,"boot":%s' % ("true" if online else "false", _int(boot, "boot"))
    if fw is not None:
        out += ',"fw":' + _str(fw, "fw")
    if ts_ms is not None:
        out += ',"ts":' + _int(ts_ms, "ts")
    return (out + "}").encode()


def frame_header(msg_id, dev, length, sha256_hex):
    """The first line of an ``evt/frame`` payload, newline included; the JPEG follows it,
    streamed from flash by the caller (docs section 4, camera frames)."""
    return ('{"v":1,"id":%s,"dev":%s,"len":%s,"sha256":%s}\n' % (
        _str(msg_id, "msg id"), _str(dev, "device id"), _int(length, "frame len", 1, _MAX_FRAME_BYTES),
        _str(sha256_hex, "sha256"),
    )).encode()


def new_msg_id():
    """32 hex digits of a random 128-bit number: unique across a flash wipe, where an id made
    from ``seq`` would repeat and be answered ``duplicate`` with an old verdict (section 4)."""
    return hexlify(os.urandom(16)).decode()


# --- decoding -------------------------------------------------------------------------------


def load(payload, limit=_MAX_CMD_BYTES):
    """A JSON object from a payload of at most ``limit`` bytes, or ProtocolError."""
    if len(payload) > limit:
        raise ProtocolError("payload_too_large", None, why("co_size", len(payload), limit))
    try:
        data = json.loads(payload)
    except ValueError as exc:  # UnicodeError is a ValueError too
        raise ProtocolError("malformed_json", None, why("co_json", exc))
    if type(data) is not dict:
        raise ProtocolError("not_an_object", None, why("co_object"))
    return data


def require(data, name, kind, what):
    """``data[name]``, or ProtocolError missing_field / wrong_type naming it."""
    if name not in data:
        raise ProtocolError("missing_field", name, why("co_missing", name))
    value = data[name]
    if type(value) is not kind:  # bool is not int on MicroPython, nor in the protocol
        raise ProtocolError("wrong_type", name, why("co_type", name, what))
    return value


def _or(value, kind, default=None):
    return value if type(value) is kind else default


def decode_ack(payload):
    """Read a ``cmd/ack`` tolerantly (docs section 5, "Reading an ack").

    Returns ``{"msg_id", "seq", "status", "reason", "message", "verdict", "retry_s"}`` with
    ``verdict`` None or ``{"ok", "name", "text"}`` plus any of ``"cls"``, ``"min"``, ``"at"``,
    ``"leave"`` the gateway sent. Only ``status`` is required; an unknown or
    missing reason reads as ``internal_error`` (transient: keep the message rather than lose it),
    and a field of the wrong type reads as absent.
    """
    data = load(payload, _MAX_EVT_BYTES)
    status = require(data, "status", str, "a string")
    if status != "accepted" and status != "duplicate" and status != "rejected":
        raise ProtocolError("invalid_value", "status", why("co_status"))
    reason = data.get("reason")
    if not known_reason(reason):  # also a non-string
        reason = "internal_error"
    raw = data.get("verdict")
    verdict = None
    if type(raw) is dict:
        verdict = {
            "ok": raw.get("ok") is True,
            "name": _or(raw.get("name"), str),
            "text": _or(raw.get("text"), str, ""),
        }
        # What the punch meant, for the screen to say in the device's language: kept only
        # when of the right type (a bool is not a number of minutes).
        for key, kind in (("cls", str), ("min", int), ("at", str), ("leave", bool)):
            value = raw.get(key)
            if type(value) is kind:
                verdict[key] = value
    retry = data.get("retry_s")
    return {
        "msg_id": _or(data.get("id"), str),
        "seq": _or(data.get("seq"), int),
        "status": status,
        "reason": reason,
        "message": _or(data.get("msg"), str, ""),
        "verdict": verdict,
        "retry_s": float(retry) if type(retry) is int or type(retry) is float else None,
    }


def ack_action(ack, in_outbox):
    """What to do with the outbox message an ack answers: "remove", "keep" (and resend after
    ``retry_s``) or "unmatched" (no id, or not in the outbox: change nothing)."""
    if ack["msg_id"] is None or not in_outbox:
        return "unmatched"
    if ack["status"] == "rejected" and _is_one_of(ack["reason"], TRANSIENT):
        return "keep"
    return "remove"
