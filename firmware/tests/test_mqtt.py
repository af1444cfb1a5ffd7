"""tack.mqtt packet encoding and decoding, fed through a scripted socket: no broker needed.

The socket below hands bytes out in pieces as small as the test asks, so every parser path
meets partial reads; what the client writes is compared byte for byte with MQTT 3.1.1.
"""

import io
import time

from tack import mqtt, mqtt_connect
from tack.mqtt import Backoff, MQTTClient, MQTTError

_POLL = 3  # MP_STREAM_POLL: what select.poll asks a Python stream
_POLLIN = 1
_POLLOUT = 4


class FakeSock(io.IOBase):
    """Serves ``inbox`` at most ``piece`` bytes a read; None (a timeout) when it runs dry."""

    def __init__(self, inbox=b"", piece=1 << 20, wpiece=1 << 20):
        self.inbox = bytearray(inbox)
        self.pos = 0  # read position: no copy of the inbox per read (tests run in 64K too)
        self.piece = piece
        self.wpiece = wpiece
        self.out = bytearray()
        self.writes = 0
        self.biggest_write = 0
        self.eof = False
        self.closed = False

    def feed(self, data):
        if self.pos:
            self.inbox = self.inbox[self.pos :]
            self.pos = 0
        self.inbox.extend(data)

    def available(self):
        return len(self.inbox) - self.pos

    def readinto(self, buf, size=-1):
        n = min(len(buf) if size < 0 else size, self.available(), self.piece)
        if not n:
            return 0 if self.eof else None
        buf[:n] = memoryview(self.inbox)[self.pos : self.pos + n]
        self.pos += n
        return n

    def read(self, n):
        buf = bytearray(min(n, self.available(), self.piece))
        if not buf:
            return b"" if self.eof else None
        self.readinto(buf)
        return bytes(buf)

    def write(self, data, off=0, size=-1):
        n = min(len(data) - off if size < 0 else size, self.wpiece)
        self.out.extend(memoryview(data)[off : off + n])
        self.writes += 1
        self.biggest_write = max(self.biggest_write, n)
        return n

    def ioctl(self, req, arg):
        if req == _POLL:
            ready = _POLLOUT
            if self.available() or self.eof:
                ready |= _POLLIN
            return ready & arg
        return -1

    def close(self):
        self.closed = True

    def take(self):
        out = bytes(self.out)
        self.out = bytearray()
        self.writes = 0
        self.biggest_write = 0
        return out


def _client(sock=None, **kw):
    """A client 'connected' through ``sock`` (CONNACK already queued)."""
    sock = sock or FakeSock()
    sock.inbox[:0] = b"\x20\x02\x00\x00"
    kw.setdefault("clean_session", True)
    c = MQTTClient("c1", "broker.test", **kw)
    c.log = lambda msg: None
    c.connect(sock)
    sock.take()
    return c, sock


def _publish_packet(topic, payload, qos=0, pid=0, retain=False):
    tb = topic.encode()
    n = 2 + len(tb) + (2 if qos else 0) + len(payload)
    pkt = bytearray(1 + mqtt_connect._len_size(n) + n)
    pkt[0] = 0x30 | qos << 1 | (1 if retain else 0)
    i = mqtt._put_str(pkt, mqtt._put_len(pkt, 1, n), tb)
    if qos:
        pkt[i] = pid >> 8
        pkt[i + 1] = pid & 0xFF
        i += 2
    pkt[i:] = payload
    return pkt


def test_remaining_length_encoding():
    cases = [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ]
    buf = bytearray(4)
    for n, want in cases:
        end = mqtt._put_len(buf, 0, n)
        assert bytes(buf[:end]) == want, "length %d encoded as %r" % (n, bytes(buf[:end]))
        assert mqtt_connect._len_size(n) == len(want), "size of length %d" % n
    try:
        mqtt._put_len(bytearray(5), 0, 268435456)
    except ValueError:
        pass
    else:
        raise AssertionError("a length over 256 MiB must be refused")


def test_remaining_length_decoding_through_partial_reads():
    for n in (0, 127, 128, 300, 16384):
        sock = FakeSock(b"\x90" + bytes(8), piece=1)
        head = bytearray(4)
        end = mqtt._put_len(head, 0, n)
        sock.inbox[1:1] = head[:end]  # behind the packet type
        c = MQTTClient("c", "h")
        c._sock = sock
        ptype, got = c._read_header()
        assert (ptype, got) == (0x90, n), "decoded %r for %d" % ((ptype, got), n)


def test_connect_packet_minimal():
    c = MQTTClient("c1", "h", keepalive_s=30, clean_session=True)
    want = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02c1"
    assert bytes(mqtt_connect.connect_packet(c)) == want, bytes(mqtt_connect.connect_packet(c))


def test_connect_packet_with_will_and_credentials():
    c = MQTTClient(
        "dev-1",
        "h",
        keepalive_s=300,
        clean_session=False,
        user="u",
        password="pw",
        will=("t/w", b"gone", 1, True),
    )
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04])  # user, password, will retain+qos1+flag
        + b"\x01\x2c"  # keepalive 300
        + b"\x00\x05dev-1"
        + b"\x00\x03t/w"
        + b"\x00\x04gone"
        + b"\x00\x01u"
        + b"\x00\x02pw"
    )
    want = bytes([0x10, len(body)]) + body
    got = bytes(mqtt_connect.connect_packet(c))
    assert got == want, "CONNECT %r != %r" % (got, want)
    c.set_will("t/x", b"", 0, False)
    flags = mqtt_connect.connect_packet(c)[9]
    assert flags == 0x80 | 0x40 | 0x04, "will qos 0, no retain: flags 0x%02x" % flags


def test_empty_user_and_password_are_left_out():
    c = MQTTClient("c", "h", user="", password="", clean_session=True)
    assert mqtt_connect.connect_packet(c)[9] == 0x02, "flags 0x%02x" % mqtt_connect.connect_packet(c)[9]
    c = MQTTClient("c", "h", user="", password="secret", clean_session=True)
    assert mqtt_connect.connect_packet(c)[9] == 0x02, "a password without a user is not sent"


def test_connect_reads_connack_in_pieces_and_session_present():
    sock = FakeSock(b"\x20\x02\x01\x00", piece=1)
    c = MQTTClient("c1", "h", clean_session=False)
    assert c.connect(sock) is True, "session present flag lost"
    assert c.connected, "connected after CONNACK 0"
    assert bytes(sock.out).startswith(b"\x10"), "CONNECT written first"


def test_connect_refused_raises_with_code_and_reason():
    sock = FakeSock(b"\x20\x02\x00\x04")
    c = MQTTClient("c1", "broker.test", 1884, user="u", password="bad")
    try:
        c.connect(sock)
    except MQTTError as exc:
        assert exc.code == 4, "code %r" % exc.code
        text = str(exc)
        assert "bad user name or password" in text and "broker.test:1884" in text, text
    else:
        raise AssertionError("CONNACK 4 must raise")
    assert sock.closed and not c.connected, "a refused connection is closed"


def test_connect_answer_that_is_not_connack_is_a_protocol_error():
    sock = FakeSock(b"\xd0\x00")
    c = MQTTClient("c1", "h")
    try:
        c.connect(sock)
    except MQTTError as exc:
        assert exc.code == "protocol", exc.code
    else:
        raise AssertionError("PINGRESP instead of CONNACK must raise")


def test_publish_qos0_and_qos1_bytes():
    c, sock = _client()
    assert c.publish("a/b", b"hi") == 0, "QoS 0 has no packet id"
    assert sock.take() == b"\x30\x07\x00\x03a/bhi"
    pid = c.publish("a/b", "hé", qos=1, retain=True)
    assert pid == 1, pid
    assert sock.take() == b"\x33\x0a\x00\x03a/b\x00\x01h\xc3\xa9", "str payload as UTF-8"
    c.publish("a/b", b"x" * 100, qos=1)
    assert sock.writes == 1, "a small publish is one write, not %d" % sock.writes


def test_publish_survives_partial_writes():
    c, sock = _client(FakeSock(wpiece=3))
    payload = bytes(range(256)) * 4
    c.publish("t", payload, qos=1)
    out = sock.take()
    assert out[-len(payload):] == payload and len(out) == 3 + 2 + 1 + 2 + len(payload), len(out)


def test_publish_refuses_wildcards_and_qos2():
    c, sock = _client()
    for topic, qos in (("a/+", 0), ("a/#", 1), ("", 0), ("a", 2)):
        try:
            c.publish(topic, b"x", qos)
        except ValueError:
            pass
        else:
            raise AssertionError("publish(%r, qos=%d) must be refused" % (topic, qos))
    assert sock.take() == b"" and c.connected, "nothing sent, still connected"


def test_acked_and_pending_follow_puback():
    c, sock = _client()
    p1 = c.publish("t", b"1", 1)
    p2 = c.publish("t", b"2", 1)
    assert c.pending_acks() == 2 and not c.acked(p1), "nothing acked yet"
    sock.feed(b"\x40\x02" + p2.to_bytes(2, "big"))
    assert c.poll(0) == 1, "one packet handled"
    assert c.acked(p2) and not c.acked(p1) and c.pending_acks() == 1
    sock.feed(b"\x40\x02" + p1.to_bytes(2, "big") + b"\x40\x02\x99\x99")  # + a stale id
    assert c.poll(0) == 2
    assert c.acked(p1) and c.pending_acks() == 0
    assert not c.acked(0), "QoS 0 is never acked"


def test_packet_ids_wrap_and_skip_pending():
    c, sock = _client()
    c._pid = 65533
    assert c.publish("t", b"", 1) == 65534
    assert c.publish("t", b"", 1) == 65535
    assert c.publish("t", b"", 1) == 1, "ids wrap to 1, never 0"
    c._pid = 65534
    assert c.publish("t", b"", 1) == 2, "65535 and 1 still await PUBACK: skipped"


def test_reused_packet_id_is_not_acked_by_an_old_puback():
    c, sock = _client()
    pid = c.publish("t", b"", 1)
    sock.feed(b"\x40\x02" + pid.to_bytes(2, "big"))
    c.poll(0)
    assert c.acked(pid)
    c._pid = pid - 1
    assert c.publish("t", b"", 1) == pid and not c.acked(pid), "new message, new ack needed"


def test_inflight_limit():
    c, sock = _client()
    for _ in range(mqtt.MAX_INFLIGHT):
        c.publish("t", b"", 1)
    try:
        c.publish("t", b"", 1)
    except MQTTError as exc:
        assert exc.code == "inflight_full", exc.code
    else:
        raise AssertionError("publish past MAX_INFLIGHT must raise")
    assert c.connected and c.publish("t", b"", 0) == 0, "QoS 0 still goes"


def test_incoming_publish_qos1_one_byte_at_a_time():
    got = []
    c, sock = _client(FakeSock(piece=1))
    c.set_callback(lambda t, p: got.append((t, p, bytes(sock.out))))
    sock.feed(_publish_packet("cmd/ack", b'{"ok":1}', qos=1, pid=0x1234))
    assert c.poll(0) == 1
    assert got and got[0][:2] == ("cmd/ack", b'{"ok":1}'), got
    assert type(got[0][1]) is bytes and type(got[0][0]) is str, "topic str, payload bytes"
    assert got[0][2] == b"", "PUBACK goes after the callback returned"
    assert sock.take() == b"\x40\x02\x12\x34", "PUBACK for the message's id"


def test_incoming_publish_qos0_is_not_acked():
    got = []
    c, sock = _client()
    c.set_callback(lambda t, p: got.append((t, p)))
    sock.feed(_publish_packet("x/y", b"", qos=0, retain=True))
    c.poll(0)
    assert got == [("x/y", b"")], got
    assert sock.take() == b"", "no PUBACK for QoS 0"


def test_large_incoming_publish_in_pieces():
    got = []
    c, sock = _client(FakeSock(piece=7))
    c.set_callback(lambda t, p: got.append((t, p)))
    payload = bytes(i * 7 & 0xFF for i in range(1500))
    sock.feed(_publish_packet("big/one", payload, qos=1, pid=9))
    assert c.poll(0) == 1
    assert got == [("big/one", payload)], "payload of %d bytes" % len(got and got[0][1])
    assert sock.take() == b"\x40\x02\x00\x09"


def test_oversize_payload_dropped_acked_and_stream_stays_in_step():
    got = []
    logs = []
    c, sock = _client(FakeSock(piece=100))
    c.set_callback(lambda t, p: got.append((t, p)))
    c.log = logs.append
    c.max_payload = 600
    sock.feed(_publish_packet("big", b"z" * 1500, qos=1, pid=5))
    sock.feed(_publish_packet("small", b"ok", qos=1, pid=6))
    assert c.poll(0) == 2
    assert got == [("small", b"ok")], got
    assert sock.take() == b"\x40\x02\x00\x05\x40\x02\x00\x06", "both acknowledged"
    assert logs and "1500" in logs[0] and "big" in logs[0], logs


class NoRoomSock(FakeSock):
    """A heap with no room for a payload over 1000 bytes: read() fails making its buffer,
    before it takes a byte, as MicroPython's stream read() does."""

    def read(self, n):
        if n > 1000:
            raise MemoryError("memory allocation failed, allocating %d bytes" % n)
        return FakeSock.read(self, n)


def test_payload_the_heap_cannot_hold_is_dropped_acked_and_the_link_stays_up():
    # A retained cmd/notice too big for a 64 KiB terminal came again on every reconnect and
    # failed it: the device never got back online.
    got = []
    logs = []
    c, sock = _client(NoRoomSock(piece=100))
    c.set_callback(lambda t, p: got.append((t, p)))
    c.log = logs.append
    sock.feed(_publish_packet("cmd/notice", b"n" * 3600, qos=1, pid=7))
    sock.feed(_publish_packet("cmd/ack", b"a" * 800, qos=1, pid=8))
    assert c.poll(0) == 2
    assert c.connected
    assert got == [("cmd/ack", b"a" * 800)], got
    assert sock.take() == b"\x40\x02\x00\x07\x40\x02\x00\x08", "both acknowledged"
    assert len(logs) == 1 and "3600" in logs[0] and "cmd/notice" in logs[0], logs


def test_a_schedule_the_heap_cannot_hold_is_not_acked_so_it_comes_again():
    # Only a notice may be let go (the gateway keeps listing it as unread); a schedule is not
    # sent again by itself, so the session ends unacknowledged and the broker redelivers it.
    got = []
    c, sock = _client(NoRoomSock(piece=100))
    c.set_callback(lambda t, p: got.append((t, p)))
    sock.feed(_publish_packet("cmd/schedule", b"s" * 3600, qos=1, pid=9))
    try:
        c.poll(0)
    except MemoryError:
        pass
    else:
        raise AssertionError("a schedule with no room was let go")
    assert got == []
    assert b"\x40\x02\x00\x09" not in sock.take(), "not acknowledged"


def test_poll_handles_every_packet_available():
    got = []
    c, sock = _client(FakeSock(piece=3))
    c.set_callback(lambda t, p: got.append(p))
    pid = c.publish("t", b"", 1)
    sock.take()
    sock.feed(
        _publish_packet("a", b"1")
        + b"\x40\x02"
        + pid.to_bytes(2, "big")
        + b"\xd0\x00"
        + _publish_packet("a", b"2", 1, 77)
    )
    assert c.poll(0) == 4
    assert got == [b"1", b"2"] and c.acked(pid), (got, c.acked(pid))
    assert c.poll(0) == 0, "nothing left"


def test_callback_error_leaves_message_unacked_and_connection_up():
    c, sock = _client()

    def boom(topic, payload):
        raise OSError(5, "app storage full")

    c.set_callback(boom)
    sock.feed(_publish_packet("t", b"1", 1, 3))
    try:
        c.poll(0)
    except OSError:
        pass
    else:
        raise AssertionError("the callback's error reaches the caller")
    assert c.connected and not sock.closed, "the stream is whole: keep the connection"
    assert sock.take() == b"", "no PUBACK: the broker delivers it again after a reconnect"
    c.set_callback(lambda t, p: None)
    sock.feed(_publish_packet("t", b"2", 1, 4))
    c.poll(0)
    assert sock.take() == b"\x40\x02\x00\x04"


def test_subscribe_waits_for_suback_and_delivers_backlog():
    got = []
    c, sock = _client(FakeSock(piece=2))
    c.set_callback(lambda t, p: got.append(p))
    sock.feed(_publish_packet("cmd/ack", b"queued", 1, 40) + b"\x90\x03\x00\x01\x01")
    assert c.subscribe("tack/v1/s/d/cmd/+", 1) == 1
    out = sock.take()
    want_sub = b"\x82\x16\x00\x01\x00\x11tack/v1/s/d/cmd/+\x01"
    assert out.startswith(want_sub), out
    assert out[len(want_sub):] == b"\x40\x02\x00\x28", "backlog message acked"
    assert got == [b"queued"], got


def test_subscribe_without_waiting_leaves_backlog_and_suback_to_poll():
    # tack.link's way: the backlog is handled once the connect code is unloaded.
    got = []
    c, sock = _client(FakeSock(piece=2))
    c.set_callback(lambda t, p: got.append(p))
    sock.feed(_publish_packet("cmd/ack", b"queued", 1, 40) + b"\x90\x03\x00\x01\x80")
    assert mqtt_connect.subscribe(c, "tack/v1/s/d/cmd/+", 1, False) is None
    assert sock.take() == b"\x82\x16\x00\x01\x00\x11tack/v1/s/d/cmd/+\x01", "only SUBSCRIBE"
    assert got == [] and c._suback == -1
    assert c.poll(0) == 2
    assert got == [b"queued"], got
    assert sock.take() == b"\x40\x02\x00\x28", "backlog message acked"
    assert c._suback == 0x180, "the refusal, for the link to act on"


def test_subscribe_refused_raises():
    c, sock = _client()
    sock.feed(b"\x90\x03\x00\x01\x80")
    try:
        c.subscribe("forbidden/#", 1)
    except MQTTError as exc:
        assert exc.code == 0x80 and "forbidden/#" in str(exc), str(exc)
    else:
        raise AssertionError("SUBACK 0x80 must raise")


def test_subscribe_without_suback_times_out():
    c, sock = _client(timeout_s=0.2)
    t0 = time.ticks_ms()
    try:
        c.subscribe("t", 1)
    except OSError:
        pass
    else:
        raise AssertionError("no SUBACK must raise")
    waited = time.ticks_diff(time.ticks_ms(), t0)
    assert 150 <= waited < 1000, "waited %d ms" % waited
    assert not c.connected and sock.closed


def test_broker_closing_the_connection_raises_and_closes():
    c, sock = _client()
    sock.eof = True
    try:
        c.poll(0)
    except OSError as exc:
        assert "closed" in str(exc), str(exc)
    else:
        raise AssertionError("EOF must raise")
    assert not c.connected and sock.closed
    try:
        c.poll(0)
    except MQTTError as exc:
        assert exc.code == "not_connected"
    else:
        raise AssertionError("poll after close must say so")


def test_malformed_remaining_length_is_a_protocol_error():
    c, sock = _client()
    sock.feed(b"\x30\xff\xff\xff\xff\x01")
    try:
        c.poll(0)
    except MQTTError as exc:
        assert exc.code == "protocol", exc.code
    else:
        raise AssertionError("a 5-byte length must raise")
    assert not c.connected


def test_keepalive_pings_and_detects_a_dead_link():
    c, sock = _client(keepalive_s=2)
    assert c.poll(0) == 0 and sock.take() == b"", "no ping while traffic is fresh"
    past = time.ticks_add(time.ticks_ms(), -2000)
    c._tx_ms = past
    c.poll(0)
    assert sock.take() == b"\xc0\x00", "PINGREQ once nothing was sent for keepalive_s"
    c.poll(0)
    assert sock.take() == b"", "one PINGREQ at a time"
    sock.feed(b"\xd0\x00")
    assert c.poll(0) == 1 and c._ping_ms is None, "PINGRESP settles the ping"
    c._rx_ms = past  # nothing heard for keepalive_s: ask
    c.poll(0)
    assert sock.take() == b"\xc0\x00", "PINGREQ when nothing arrived for keepalive_s"
    c._ping_ms = time.ticks_add(time.ticks_ms(), -1000)
    try:
        c.poll(0)
    except OSError as exc:
        assert "PINGREQ" in str(exc), str(exc)
    else:
        raise AssertionError("no PINGRESP within keepalive_s / 2 must raise")
    assert not c.connected and sock.closed


def test_poll_waits_no_longer_than_the_next_ping():
    c, sock = _client(keepalive_s=1)
    c._tx_ms = time.ticks_add(time.ticks_ms(), -800)
    t0 = time.ticks_ms()
    c.poll(5000)
    waited = time.ticks_diff(time.ticks_ms(), t0)
    assert waited < 600, "poll waited %d ms past the ping" % waited
    assert sock.take() == b"\xc0\x00"


def test_publish_parts_streams_file_slices(tmp):
    path = tmp + "/frame.bin"
    data = bytes(i * 31 & 0xFF for i in range(1200))
    with open(path, "wb") as f:
        f.write(data)
    c, sock = _client()
    pid = c.publish_parts("evt/frame", [b'{"h":1}\n', (path, 100, 1000), b"END"], qos=1)
    writes, biggest = sock.writes, sock.biggest_write
    out = sock.take()
    size = 8 + 1000 + 3
    head = bytes([0x32, (size + 13) & 0x7F | 0x80, (size + 13) >> 7, 0, 9]) + b"evt/frame"
    assert out[:16] == head + pid.to_bytes(2, "big"), out[:16]
    assert out[16:24] == b'{"h":1}\n' and out[-3:] == b"END", "bytes parts around the slice"
    assert out[24:-3] == data[100:1100], "the file slice, byte for byte"
    assert biggest <= 512 and writes == 3, "%d writes, biggest %d" % (writes, biggest)


def test_publish_a_whole_file_larger_than_the_buffer(tmp):
    path = tmp + "/f.bin"
    data = bytes(range(256)) * 5
    with open(path, "wb") as f:
        f.write(data)
    c, sock = _client(FakeSock(wpiece=100))
    assert c.publish_parts("t", [(path, 0, len(data))], qos=0) == 0
    out = sock.take()
    assert out[-len(data):] == data and len(out) == 3 + 3 + len(data), len(out)


def test_publish_parts_bad_slice_fails_before_sending(tmp):
    path = tmp + "/short.bin"
    with open(path, "wb") as f:
        f.write(b"12345")
    c, sock = _client()
    for parts in ([b"a", (path, 3, 5)], [(tmp + "/missing.bin", 0, 1)]):
        try:
            c.publish_parts("t", parts)
        except ValueError as exc:
            assert "short.bin" in str(exc) or "missing.bin" in str(exc), str(exc)
        else:
            raise AssertionError("%r must be refused" % (parts,))
    assert sock.take() == b"" and c.connected and c.pending_acks() == 0


def test_disconnect_sends_disconnect_and_is_idempotent():
    c, sock = _client()
    c.disconnect()
    assert sock.take() == b"\xe0\x00" and sock.closed and not c.connected
    c.disconnect()
    c.close()


def test_backoff_grows_to_the_cap_and_resets():
    b = Backoff(100, 5000, rand=lambda: 0.999)
    seq = [b.next_ms() for _ in range(8)]
    assert seq[0] >= 100 and all(x < y for x, y in zip(seq, seq[1:4])), seq
    assert seq[-1] == 5000 and max(seq) == 5000, "capped: %r" % seq
    b.reset()
    assert b.next_ms() < 300, "reset starts again near base_ms"
    low = Backoff(100, 5000, rand=lambda: 0.0)
    assert [low.next_ms() for _ in range(3)] == [100, 100, 100], "never under base_ms"


def test_backoff_jitter_spreads_devices():
    firsts = [Backoff(100, 5000).next_ms() for _ in range(50)]
    assert len(set(firsts)) > 10, "jitter: %r" % firsts
    assert all(100 <= x <= 300 for x in firsts), firsts
    late = []
    for _ in range(50):
        b = Backoff(100, 5000)
        for _ in range(7):
            x = b.next_ms()
            assert 100 <= x <= 5000, x
        late.append(x)
    assert sum(late) > 4 * sum(firsts), "delays grow: %d vs %d" % (sum(late), sum(firsts))
