"""tack.codec's inlined limits and reason matching, inside MicroPython.

Apart from test_codec.py, whose module must stay small: the vectors run from its .mpy in a
64 KiB heap (tests/firmware/test_codec_vectors.py).
"""

from tack import codec, protocol
from tack.schedule import decode_schedule
from tack.timesync import decode_time


def _refuses(body, kind="punch"):
    try:
        codec.encode_event("m-1", "term-001", 1, 0, kind, body)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("encode_event accepted %r" % (body,))


def test_the_codecs_inlined_limits_are_the_protocol_tables():
    # codec.py inlines its limits as const(); tack.protocol's table is the one compared with the
    # reference (tests/firmware/test_codec_vectors.py). Each limit is accepted and one past refused.
    p = protocol
    for lat in (p.MAX_LAT_E7, -p.MAX_LAT_E7):
        codec.encode_event("m-1", "d", 1, 0, "punch", {"card": "1", "gps": {"lat": lat, "lon": p.MAX_LON_E7, "acc": p.MAX_GPS_ACC_M}})
    for gps in ({"lat": p.MAX_LAT_E7 + 1, "lon": 0}, {"lat": 0, "lon": -p.MAX_LON_E7 - 1}, {"lat": 0, "lon": 0, "acc": p.MAX_GPS_ACC_M + 1}):
        assert "must be" in _refuses({"card": "1", "gps": gps}), gps
    codec.frame_header("m-1", "d", p.MAX_FRAME_BYTES, "a" * 64)
    assert "photo len" in _refuses({"card": "1", "photo": {"len": p.MAX_FRAME_BYTES + 1, "sha256": "a" * 64}})
    codec.encode_event("m-1", "d", 1, 0, "button", {"button": "book", "minutes": p.MAX_BUTTON_MINUTES})
    assert "minutes" in _refuses({"button": "book", "minutes": p.MAX_BUTTON_MINUTES + 1}, "button")
    ack = b'{"status":"accepted","msg":"' + b"x" * (p.MAX_EVT_BYTES - 30) + b'"}'
    ack = ack + b" " * (p.MAX_EVT_BYTES - len(ack))
    assert codec.decode_ack(ack)["status"] == "accepted"
    for decode, limit in ((codec.decode_ack, p.MAX_EVT_BYTES), (decode_time, p.MAX_CMD_BYTES), (decode_schedule, p.MAX_CMD_BYTES)):
        try:
            decode(b" " * (limit + 1))
        except codec.ProtocolError as exc:
            assert exc.reason == "payload_too_large", (decode, exc.reason)
        else:
            raise AssertionError("a payload of %d bytes was read" % (limit + 1))
    items = ",".join('{"id":"b%d","start":%d,"end":%d}' % (i, i + 1, i + 2) for i in range(p.MAX_SCHEDULE_ITEMS + 1))
    s = decode_schedule(('{"items":[%s]}' % items).encode())
    assert len(s["items"]) == p.MAX_SCHEDULE_ITEMS and s["dropped"] == 1, s["dropped"]
    long_id = "b" * (p.MAX_BOOKING_CHARS + 1)
    s = decode_schedule(('{"items":[{"id":"%s","start":1,"end":2},{"id":"%s","start":1,"end":2}]}' % (long_id[1:], long_id)).encode())
    assert [i["id"] for i in s["items"]] == [long_id[1:]] and s["dropped"] == 1, s
    reasons = p.reasons()
    assert reasons[0] == "ok" and "internal_error" in reasons, reasons


def test_a_reason_that_is_not_exactly_one_code_reads_as_internal_error():
    # tack/reasons.txt has one code a line: only a whole line matches.
    for reason in ('"ok busy"', '" busy"', '"busy "', '"busy\\n"', '""', "5", '"Busy"', '"internal"'):
        ack = codec.decode_ack(b'{"id":"m-1","status":"rejected","reason":%s}' % reason.encode())
        assert ack["reason"] == "internal_error", (reason, ack["reason"])
    assert codec.decode_ack(b'{"id":"m-1","status":"rejected","reason":"busy"}')["reason"] == "busy"
