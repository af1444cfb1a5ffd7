"""tack.codec, tack.schedule and tack.protocol against the shared vectors (devices/protocol/vectors/), inside MicroPython.

The vectors are read a line at a time (each case is one line, at most 9 KiB) through one buffer
and 512-byte reads: events_v1.json alone is larger than a device's heap, and the tests must pass
with ``-X heapsize=64K``. Each test loops over one file and names every failing case;
``report()`` prints one line per case for tests/firmware/test_codec_vectors.py, which makes each
vector a pytest case of its own.
"""

import gc
import os
from binascii import unhexlify

import json

from tack import codec, unload
from tack.schedule import decode_schedule


def _protocol():
    # Imported when needed, not kept: in 64K the schedule vectors need the room it takes.
    from tack import protocol

    return protocol


def _vectors_dir():
    found = os.getenv("TACK_VECTORS")
    if found:
        return found
    for path in ("devices/protocol/vectors", __file__.rsplit("/", 3)[0] + "/devices/protocol/vectors"):
        try:
            os.stat(path + "/events_v1.json")
            return path
        except OSError:
            pass
    raise OSError("vectors not found: run from the repository root or set TACK_VECTORS")


_LINE_MAX = 9216  # tests/protocol/test_event_vectors.py keeps every line shorter
_CHUNK = 512
_buf = bytearray(0)  # the line buffer, only while a file is read


def _cases(filename, canonical_only=False):
    """Each case of a vector file, parsed from its line in the one shared buffer; with
    ``canonical_only``, lines without ``"canonical": true`` are passed over unparsed."""
    global _buf
    gc.collect()
    _buf = bytearray(_LINE_MAX + _CHUNK)
    mv = memoryview(_buf)
    with open(_vectors_dir() + "/" + filename, "rb") as f:
        n = 0  # bytes held in _buf
        scanned = 0  # of which already searched for a newline
        while True:
            nl = _buf.find(b"\n", scanned, n)
            if nl < 0:
                if n + _CHUNK > len(_buf):
                    raise AssertionError("%s: a line longer than %d bytes" % (filename, _LINE_MAX))
                got = f.readinto(mv[n : n + _CHUNK])
                if not got:
                    mv = None
                    _buf = bytearray(0)
                    return  # the last line is the file's closing brace
                scanned, n = n, n + got
                continue
            if canonical_only and _buf.find(b'"canonical": true', 0, nl) < 0:
                case = None
            else:
                gc.collect()
                case = _parse(mv[:nl])
            if case is not None:
                yield case
                case = None
            rest = n - nl - 1
            _buf[0:rest] = bytes(mv[nl + 1 : n])
            n, scanned = rest, 0


def _parse(line):
    """A case from its line (``    {"name": ...},``), or None for the file's other lines.

    A ``payload`` is decoded where it lies in the buffer rather than as a string of the parsed
    case: the 8 KiB payloads of the size-limit cases would otherwise be held three times (the
    string, its bytes, what the codec makes of them), more than a 64 KiB heap has in one piece.
    The case's ``payload`` is then bytes, or a memoryview of the buffer for a big one (valid
    until the next case is read), as an MQTT client's receive buffer would be.
    """
    i = 0
    while i < len(line) and line[i] == 32:
        i += 1
    if bytes(line[i : i + 9]) != b'{"name": ':
        return None
    end = len(line) - 1 if line[len(line) - 1] == 44 else len(line)  # the "," between cases
    at = _buf.find(b'"payload": "', i, end)
    if at < 0:
        return json.loads(line[i:end])
    first = at + 12
    last = first
    while _buf[last] != 34:  # the closing quote; an escaped one is skipped with its backslash
        last += 2 if _buf[last] == 92 else 1
    case = json.loads(bytes(line[i:first]) + bytes(line[last:end]))
    size = _unescape(first, last) - first
    data = memoryview(_buf)[first : first + size]
    case["payload"] = bytes(data) if size <= 1024 else data
    return case


_ESCAPES = {34: 34, 92: 92, 47: 47, 98: 8, 102: 12, 110: 10, 114: 13, 116: 9}


def _unescape(r, end):
    """Decode the JSON string escapes of _buf[r:end] in place, to UTF-8; returns the new end."""
    w = r
    while r < end:
        c = _buf[r]
        if c != 92:
            _buf[w] = c
            w += 1
            r += 1
            continue
        e = _buf[r + 1]
        if e != 117:  # not \u
            _buf[w] = _ESCAPES[e]
            w += 1
            r += 2
            continue
        cp = int(bytes(_buf[r + 2 : r + 6]).decode(), 16)
        r += 6
        if 0xD800 <= cp < 0xDC00 and _buf[r] == 92 and _buf[r + 1] == 117:  # a surrogate pair
            low = int(bytes(_buf[r + 2 : r + 6]).decode(), 16)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
            r += 6
        for b in chr(cp).encode():
            _buf[w] = b
            w += 1
    return w


def _payload(case):
    # append_zeros (frames) is left off: the device side only writes frame headers.
    if "payload_hex" in case:
        return unhexlify(case["payload_hex"])
    return case["payload"]


def _fail(what, got, want):
    raise AssertionError("%s: got %r, want %r" % (what, got, want))


def _refused(fn, arg, expect):
    try:
        got = fn(arg)
    except codec.ProtocolError as exc:
        if (exc.reason, exc.field) != (expect["reason"], expect.get("field")):
            _fail("refusal", (exc.reason, exc.field), (expect["reason"], expect.get("field")))
        return
    _fail("decoded", got, "ProtocolError %s" % expect["reason"])


# --- one check per file: each raises AssertionError naming what differs ----------------------


def check_topic(case):
    expect = case["expect"]
    if not expect["ok"]:
        _refused(_protocol().parse_topic, case["topic"], expect)
        return
    want = (expect["site"], expect["device_id"], expect["kind"], expect["name"])
    got = _protocol().parse_topic(case["topic"])
    if tuple(got) != want:
        _fail("parse_topic", got, want)
    rebuilt = _protocol().topic(*got)
    if rebuilt != case["topic"]:
        _fail("topic", rebuilt, case["topic"])


def _wire_body(kind, b):
    """The body dict an application hands to encode_event, from the vector's model names."""
    if kind == "checkin":
        return {"booking": b["booking"]}
    if kind == "query":
        return {b["credential_type"]: b["credential"], "q": b["q"]}
    if kind == "receipt":
        # As the device's acknowledgement hands it over: by None when nobody showed a card.
        return {"notice": b["notice"], "by": b["by"]}
    if kind == "button":
        body = {"button": b["button"]}
        if b["booking"] is not None:
            body["booking"] = b["booking"]
        if b["minutes"] is not None:
            body["minutes"] = b["minutes"]
        return body
    body = {b["credential_type"]: b["credential"]}
    gps, photo = b["gps"], b["photo"]
    if gps is not None:
        # As a receiver gives it: None for what it does not know, plus fields not sent.
        body["gps"] = {"lat": gps["lat_e7"], "lon": gps["lon_e7"], "acc": gps["acc_m"], "ts": gps["ts_ms"], "sats": 7,
                       "prov": gps.get("provider"), "mock": gps.get("mock")}
    if photo is not None:
        body["photo"] = {"len": photo["size_bytes"], "sha256": photo["sha256"]}
    return body


def check_event(case):
    e = case["expect"]["envelope"]
    got = codec.encode_event(e["msg_id"], e["device_id"], e["seq"], e["device_ts_ms"], e["kind"], _wire_body(e["kind"], e["body"]))
    if got != _payload(case):
        _fail("encode_event", got, _payload(case))


def check_presence(case):
    p = case["expect"]["presence"]
    got = codec.encode_presence(p["online"], p["boot"], p["firmware"], p["ts_ms"])
    if got != _payload(case):
        _fail("encode_presence", got, _payload(case))


def check_frame_header(case):
    f = case["expect"]["frame"]
    payload = _payload(case)
    want = payload[: payload.index(b"\n") + 1]
    got = codec.frame_header(f["msg_id"], f["device_id"], f["data_len"], f["sha256"])
    if got != want:
        _fail("frame_header", got, want)


def check_ack(case):
    expect = case["expect"]
    if not expect["ok"]:
        _refused(codec.decode_ack, _payload(case), expect)
        return
    ack = codec.decode_ack(_payload(case))
    if ack != expect["ack"]:
        _fail("decode_ack", ack, expect["ack"])
    action = codec.ack_action(ack, True)
    if action != expect["outbox"]:
        _fail("ack_action", action, expect["outbox"])
    # An ack for a message no longer in the outbox (a second ack) changes nothing.
    if codec.ack_action(ack, False) != "unmatched":
        _fail("ack_action when not in the outbox", codec.ack_action(ack, False), "unmatched")


def _wire_schedule(s):
    # In place, one item at a time: in a 64K heap the case, the decoded schedule and a second
    # copy of 24 expected items do not fit together.
    items = s["items"]
    for k in range(len(items)):
        i = items[k]
        items[k] = {"id": i["booking"], "title": i["title"], "start": i["start_ms"], "end": i["end_ms"], "by": i["organiser"], "in": i["checked_in"], "st": i.get("state")}
    return {"room": s["room"], "ts": s["ts_ms"], "items": items, "dropped": s["dropped"],
            "open": s.get("checkin_open_min"), "rel": s.get("release_after_min"), "priv": s.get("private", False)}


def _wire_notices(n):
    items = [{"id": i["notice_id"], "title": i["title"], "text": i["text"], "ts": i["ts_ms"], "from": i["sender"]} for i in n["items"]]
    return {"ts": n["ts_ms"], "items": items, "dropped": n["dropped"]}


def _decode_notice(payload):
    # Imported when needed, as a device does when a notice arrives (_run unloads it again).
    from tack.codec_notice import decode_notice

    return decode_notice(payload)


def check_command(case):
    expect = case["expect"]
    if case["command"] == "notice":
        if not expect["ok"]:
            _refused(_decode_notice, _payload(case), expect)
            return
        got = _decode_notice(_payload(case))
        if got != _wire_notices(expect["notices"]):
            _fail("decode_notice", got, _wire_notices(expect["notices"]))
        return
    if case["command"] == "time":  # as on the device: loaded for a cmd/time, let go after
        from tack.timesync import decode_time as decode

        unload("tack.timesync")
    else:
        decode = decode_schedule
    if not expect["ok"]:
        _refused(decode, _payload(case), expect)
        return
    got = decode(_payload(case))
    if case["command"] == "time":
        nxt = expect.get("tz_next")
        want = (expect["ts_ms"], expect.get("tz_min"), (nxt[0], nxt[1]) if nxt else None)
    else:
        want = _wire_schedule(expect["schedule"])
    if got != want:
        _fail("decode_" + case["command"], got, want)


def _canonical(case):
    return case.get("canonical", False)


def _every(case):
    return True


# File, check, which cases: the device encodes events, presence and frame headers (so the
# canonical ones pin its bytes) and decodes topics, acks and commands (so every case).
CHECKS = (
    ("topics_v1.json", check_topic, _every),
    ("events_v1.json", check_event, _canonical),
    ("presence_v1.json", check_presence, _canonical),
    ("frames_v1.json", check_frame_header, _canonical),
    ("acks_v1.json", check_ack, _every),
    ("commands_v1.json", check_command, _every),
)


def _run(filename, check, select, out=None):
    """Check the selected cases of a file; returns (count, failures)."""
    count, failures = 0, []
    for case in _cases(filename, select is _canonical):
        if not select(case):
            continue
        count += 1
        try:
            check(case)
            error = None
        except Exception as exc:  # report every case, go on
            error = "%s: %s" % (type(exc).__name__, exc)
            failures.append("%s: %s" % (case["name"], error))
        if out is not None:
            out("VEC %s %s %s%s" % ("FAIL" if error else "PASS", filename, case["name"], ": " + error if error else ""))
        gc.collect()
    # What this file's checks loaded and the next ones do not need (the 64K run needs room).
    unload("tack.protocol")
    unload("tack.codec_panel")
    unload("tack.query")
    unload("tack.codec_notice")
    gc.collect()
    return count, failures


def _run_file(filename):
    for name, check, select in CHECKS:
        if name == filename:
            count, failures = _run(name, check, select)
            assert count, "no cases of %s were checked" % filename
            assert not failures, "%d of %d cases of %s failed:\n  %s" % (len(failures), count, filename, "\n  ".join(failures))
            return
    raise AssertionError("no check for %s" % filename)


def report():
    """One line per vector case, then the codec's constants, for the CPython driver."""
    for filename, check, select in CHECKS:
        _run(filename, check, select, print)
    protocol = _protocol()
    for name in ("PROTOCOL_VERSION", "MAX_EVT_BYTES", "MAX_STATE_BYTES", "MAX_CMD_BYTES", "MAX_FRAME_BYTES",
                 "MAX_FRAME_HEADER_BYTES", "MAX_ID_CHARS", "MAX_DEVICE_ID_CHARS", "MAX_SITE_CHARS",
                 "MAX_BOOKING_CHARS", "MAX_BUTTON_MINUTES", "MAX_SCHEDULE_ITEMS", "MAX_LAT_E7", "MAX_LON_E7",
                 "MAX_GPS_ACC_M", "MAX_SAFE_INT"):
        print("CONST %s %d" % (name, getattr(protocol, name)))
    print("LIST REASONS " + " ".join(protocol.reasons()))
    print("LIST TRANSIENT " + " ".join(protocol.TRANSIENT))
    print("LIST BUTTONS " + " ".join(protocol.BUTTONS))
    print("LIST KINDS " + " ".join(protocol.KINDS))
    print("LIST QUERIES " + " ".join(protocol.QUERIES))


# --- the vectors -----------------------------------------------------------------------------


def test_topics_vectors():
    _run_file("topics_v1.json")


def test_canonical_events_are_encoded_byte_for_byte():
    _run_file("events_v1.json")


def test_canonical_presence_is_encoded_byte_for_byte():
    _run_file("presence_v1.json")


def test_canonical_frame_headers_are_encoded_byte_for_byte():
    _run_file("frames_v1.json")


def test_acks_are_read_and_settle_the_outbox():
    _run_file("acks_v1.json")


def test_time_and_schedule_commands_are_read():
    _run_file("commands_v1.json")


# --- what the vectors do not show --------------------------------------------------------------


def test_new_msg_id_is_32_hex_digits_and_never_repeats():
    ids = [codec.new_msg_id() for _ in range(50)]
    for i in ids:
        assert len(i) == 32 and all(c in "0123456789abcdef" for c in i), i
        assert codec.valid_id(i, _protocol().MAX_ID_CHARS), i
    assert len(set(ids)) == 50, "a message id repeated"


def _refuses(body, kind="punch"):
    try:
        codec.encode_event("m-1", "term-001", 1, 0, kind, body)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("encode_event accepted %r" % (body,))


def test_encode_event_refuses_a_fix_in_float_degrees():
    # The gateway would refuse the whole punch for it; the terminal must find out first.
    why = _refuses({"card": "04A1B2C3", "gps": {"lat": 31.2304, "lon": 121.4737}})
    assert "integer" in why, why
    why = _refuses({"card": "04A1B2C3", "gps": {"lat": 900000001, "lon": 0}})
    assert "-900000000..900000000" in why, why


def test_encode_event_refuses_what_the_gateway_would_refuse():
    assert "exactly one" in _refuses({"card": "1", "emp": "2"})
    assert "exactly one" in _refuses({})
    assert "not 'gsp'" in _refuses({"card": "1", "gsp": {}})
    assert "sha256" in _refuses({"card": "1", "photo": {"len": 1, "sha256": "A" * 64}})
    assert "photo len" in _refuses({"card": "1", "photo": {"len": 65537, "sha256": "a" * 64}})
    assert "button must be" in _refuses({"button": "snooze"}, "button")
    assert "minutes" in _refuses({"button": "book", "minutes": 0}, "button")
    assert "checkin body" in _refuses({"booking": "b", "x": 1}, "checkin")
    assert "exactly one" in _refuses({"card": "1", "emp": "2", "q": "leave"}, "query")
    assert "q must be" in _refuses({"card": "1", "q": "overtime"}, "query")
    assert "q must be" in _refuses({"card": "1"}, "query")
    assert "not 'gps'" in _refuses({"card": "1", "q": "leave", "gps": {}}, "query")
    assert "not one of" in _refuses({"card": "1"}, "frame")
    try:
        codec.encode_event("m-1", "term-001", True, 0, "punch", {"card": "1"})
    except ValueError as exc:
        assert "seq" in str(exc), exc
    else:
        raise AssertionError("a bool seq was encoded")


def test_topic_refuses_parts_that_would_make_it_ambiguous():
    protocol = _protocol()
    assert protocol.topic("hq", "term-001", "evt", "frame") == "tack/v1/hq/term-001/evt/frame"
    for args in (("h/q", "d", "evt", "punch"), ("hq", "+", "evt", "punch"), ("hq", "d", "EVT", "punch"), ("hq", "d", "evt", "")):
        try:
            protocol.topic(*args)
        except ValueError:
            continue
        raise AssertionError("topic%r was built" % (args,))


def test_protocol_error_carries_reason_field_and_message():
    try:
        from tack.timesync import decode_time

        decode_time(b'{"v":1,"ts":-1}')
    except codec.ProtocolError as exc:
        assert (exc.reason, exc.field) == ("invalid_value", "ts"), (exc.reason, exc.field)
        assert "0..2^53-1" in str(exc), str(exc)
        assert isinstance(exc, ValueError)
    else:
        raise AssertionError("a negative time was read")


def test_reading_an_ack_from_a_bytearray_or_memoryview():
    # The MQTT client may hand over its receive buffer rather than bytes.
    raw = b'{"v":1,"id":"m-1","seq":1,"status":"rejected","reason":"busy","msg":"","verdict":null,"retry_s":2.5}'
    for payload in (bytearray(raw), memoryview(raw)):
        ack = codec.decode_ack(payload)
        assert ack["retry_s"] == 2.5 and codec.ack_action(ack, True) == "keep", ack


def test_encoding_a_punch_allocates_little():
    body = {"card": "04A1B2C3", "gps": {"lat": 312304000, "lon": 1214737000, "acc": 12, "ts": 1767225599000}, "photo": {"len": 23456, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}
    msg_id = codec.new_msg_id()
    gc.collect()
    before = gc.mem_alloc()
    payload = codec.encode_event(msg_id, "term-001", 123456, 1767225600000, "punch", body)
    used = gc.mem_alloc() - before
    # The pieces, one join and the bytes (1.9 KiB measured on the Unix port for 305 bytes), not
    # a copy of the payload per field.
    assert used < 2560, "encoding a %d-byte punch allocated %d bytes" % (len(payload), used)


def test_the_largest_schedule_a_panel_can_be_sent_is_read():
    # 24 bookings with long non-ASCII titles, padded to the 8192-byte limit: the panel holds the
    # payload (here in one buffer, as the MQTT client's) and everything read from it at once.
    max_cmd_bytes = _protocol().MAX_CMD_BYTES
    unload("tack.protocol")
    gc.collect()
    payload = bytearray(max_cmd_bytes)
    title = "项目评审会议" * 10 + "ABCD"  # 64 characters, 184 bytes
    n = 0
    for i in range(25):
        if i == 0:
            part = '{"v":1,"room":"Room 101 – Ærø","ts":1767225600000,"items":['
        else:
            start = 1767258000000 + i * 1800000
            part = '%s{"id":"bk-%02d","title":"%s","start":%d,"end":%d,"by":"Zoë Ångström","in":%s}' % (
                "," if i > 1 else "", i - 1, title, start, start + 1800000, "true" if i % 2 else "false")
        part = part.encode()
        payload[n : n + len(part)] = part
        n += len(part)
    assert n < max_cmd_bytes - 1 and len(payload) == max_cmd_bytes, n
    payload[n] = 93  # "]", then spaces up to the closing brace in the last byte
    for i in range(n + 1, max_cmd_bytes - 1):
        payload[i] = 32
    payload[-1] = 125
    part = None
    gc.collect()
    schedule = decode_schedule(payload)
    assert schedule["dropped"] == 0 and len(schedule["items"]) == 24, schedule["dropped"]
    last = schedule["items"][23]
    assert (last["id"], last["title"], last["by"], last["in"]) == ("bk-23", title, "Zoë Ångström", False), last
    assert schedule["room"] == "Room 101 – Ærø", schedule["room"]

