"""MQTT 3.1.1 client for Tack devices: synchronous, single-threaded, small.

Why not ``umqtt.simple``: a device must find a dead link without hanging (a timeout on every
socket operation plus keepalive pings it checks), know when the broker has each QoS 1 publish
(PUBACK tracking without blocking), and send camera frames larger than its heap (payloads
streamed from files). All of it runs in ``micropython -X heapsize=64K``: one 512-byte buffer
made once, no per-byte reads, an incoming payload held only up to ``max_payload`` bytes, and an
idle ``poll(0)`` allocates nothing. (Compiling this file from source at import takes more than
64K on the 64-bit Unix port; boards and small-heap runs load the ``mpy-cross`` bytecode.)

The application owns the reconnect policy. The intended main loop::

    client = MQTTClient("tack-dev-s1-d1", host, keepalive_s=30, clean_session=False)
    client.set_callback(on_message)           # before connect: queued messages come at once
    client.set_will(topic_online, b"...", 1, True)
    backoff = Backoff(500, 30000)
    due = time.ticks_ms()
    while True:
        if not client.connected and time.ticks_diff(time.ticks_ms(), due) >= 0:
            try:
                client.connect()
                client.subscribe(topic_cmd, 1)
                backoff.reset()
            except (OSError, MQTTError):
                client.close()
                due = time.ticks_add(time.ticks_ms(), backoff.next_ms())
        if client.connected:
            try:
                client.poll(50)               # or poll(0) when the loop waits elsewhere
                ...                           # publish what is due
            except (OSError, MQTTError):
                client.close()
                due = time.ticks_add(time.ticks_ms(), backoff.next_ms())

What the loop can rely on:

- Every socket operation times out after ``timeout_s``. A broker that goes silent is found by
  keepalive: a PINGREQ goes out after ``keepalive_s`` without traffic either way, and when no
  packet at all arrives within ``keepalive_s / 2`` after it, ``poll`` raises ``OSError``
  (ETIMEDOUT): about 1.5 x ``keepalive_s`` of silence. ``poll`` never waits past the next
  keepalive action, so a loop that calls it at least that often keeps the link alive.
- An I/O or protocol error closes the socket before it is raised: ``connected`` is then False.
- QoS 1 publishes are not resent after a reconnect (a streamed payload is not kept): the
  caller's outbox sends them again. ``pending_acks()`` restarts at 0 on every connect.
- An exception from the message callback leaves ``poll`` with that message unacknowledged;
  the connection stays up and, with ``clean_session=False``, the broker delivers the message
  again after the next reconnect.
- An incoming payload over ``max_payload`` bytes, or a ``cmd/notice`` (over 512 bytes) the
  heap has no room for, is read, dropped with a log line, and still acknowledged (it would only
  come back on every reconnect, and a retained one too big for the heap would keep the device
  offline; the gateway keeps listing the notice as unread).
- A loop that waits on several sources registers ``socket()`` with its own ``select.poll``;
  the client object itself is not a stream and cannot be registered.
- With ``tls`` (made by tack.mqtt_tls) the socket is MicroPython's TLS socket, which has no
  file descriptor: ``select.poll`` asks it directly, and it reports as readable the bytes
  mbedTLS has decrypted but not handed over yet, so no packet waits inside the TLS layer.
  Its reads and writes keep the TCP socket's ``timeout_s``, the handshake's included.

Every function and message string of this module stays on the device's heap, so it keeps to
what a device uses: helpers are few and errors share their wording.
"""

import errno
import os
import random
import select
import time

from micropython import const

from tack import unload, why

try:
    from typing import Any  # for type checkers only: MicroPython has no typing
except ImportError:
    pass

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBACK = const(0x90)
_PINGRESP = const(0xD0)

# One small packet (an ack of a few hundred bytes) fits whole, so it arrives in one read; the
# same size is the file chunk of a streamed publish.
_BUF_BYTES = const(512)
# Held in RAM for the callback; the gateway's acks are a few hundred bytes.
MAX_PAYLOAD_BYTES = const(16384)
# QoS 1 publishes awaiting PUBACK; a caller that reaches it is not calling poll().
MAX_INFLIGHT = const(32)
# How many recent PUBACKs acked() remembers.
_ACKED_KEEP = const(16)
# A broker that never stops sending must not keep one poll() from returning.
_MAX_PACKETS_PER_POLL = const(64)




class MQTTError(Exception):
    """A refusal by the broker, a broken stream, or a call the client cannot serve now.

    ``code`` is the CONNACK return code (1-5), 0x80 for a refused subscription, or a short
    reason: "protocol", "not_connected", "inflight_full".
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _b(value):
    return value.encode() if isinstance(value, str) else value


def _check(topic, qos):
    """The topic as bytes, if it and the QoS can go in one packet header."""
    if qos not in (0, 1):
        raise ValueError(why("mq_qos", qos))
    tb = _b(topic)
    if not 0 < len(tb) < _BUF_BYTES - 9:
        raise ValueError(why("mq_topic", len(tb), _BUF_BYTES - 10))
    return tb


def _put_len(buf, i, n):
    """Write MQTT's remaining length (7 bits a byte, low first) at ``buf[i]``; return the end."""
    if n < 0 or n > 268435455:
        raise ValueError(why("mq_256mib", n))
    while n > 0x7F:
        buf[i] = (n & 0x7F) | 0x80
        n >>= 7
        i += 1
    buf[i] = n
    return i + 1


def _put_str(buf, i, data):
    n = len(data)
    buf[i] = n >> 8
    buf[i + 1] = n & 0xFF
    buf[i + 2 : i + 2 + n] = data
    return i + 2 + n


class MQTTClient:
    def __init__(
        self,
        client_id,
        host,
        port=1883,
        keepalive_s=30,
        clean_session=False,
        user=None,
        password=None,
        timeout_s=5.0,
        will=None,
        tls=None
    ):
        if not 0 <= keepalive_s <= 65535:
            raise ValueError(why("mq_keepal", keepalive_s))
        self.client_id = client_id
        self.host = host
        self.port = port
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        # An empty user or password (a config default) means none.
        self.user = user or None
        self.password = password or None
        self.timeout_s = timeout_s
        self.will = will
        # (context, server name, CA file) to connect with TLS (tack.mqtt_tls), or None.
        self.tls = tls
        self.max_payload = MAX_PAYLOAD_BYTES
        self.log = print  # replace with the application's logger
        self.connected = False
        self._sock = None  # type: Any
        self._poller = None  # type: Any
        self._cb = None
        self._in_cb = False
        self._pid = 0
        self._pending = set()
        self._acked = [-1] * _ACKED_KEEP
        self._acked_i = 0
        self._suback = -1  # pid << 8 | return code of the last SUBACK
        # One buffer for both ways: a packet is read whole (or its payload copied out)
        # before anything is written, and one being written is sent before a read starts.
        self._rbuf = self._tbuf = bytearray(_BUF_BYTES)
        now = time.ticks_ms()
        self._tx_ms = now
        self._rx_ms = now
        self._ping_ms = None

    # --- configuration ----------------------------------------------------------------------

    def set_callback(self, cb):
        """``cb(topic: str, payload: bytes)`` for every incoming PUBLISH."""
        self._cb = cb

    def set_will(self, topic, payload, qos=1, retain=True):
        """The last will registered by the next ``connect``."""
        self.will = (topic, payload, qos, retain)

    # --- connection -------------------------------------------------------------------------

    # Connecting and subscribing run once a connection, not all day: their code is in
    # tack.mqtt_connect, loaded for the call and dropped after, so it takes no heap meanwhile.

    def connect(self, sock=None):
        """Open the connection; return the broker's session-present flag. ``sock``: an already
        connected stream to use instead (tests hand over a scripted one).

        Raises MQTTError when the broker refuses (``code`` = CONNACK return code) and OSError
        when it cannot be reached or does not answer within ``timeout_s``.
        """
        from tack import mqtt_connect

        try:
            return mqtt_connect.connect(self, sock)
        finally:
            del mqtt_connect
            unload("tack.mqtt_connect")

    def subscribe(self, topic, qos=1):
        """Subscribe and wait up to ``timeout_s`` for SUBACK; return the granted QoS.

        Messages that arrive meanwhile (a persistent session's backlog) go to the callback.
        """
        from tack import mqtt_connect

        try:
            return mqtt_connect.subscribe(self, topic, qos)
        finally:
            del mqtt_connect
            unload("tack.mqtt_connect")


    def disconnect(self):
        """Say goodbye (the broker then drops the will) and close; safe when closed."""
        if self._sock is not None:
            try:
                self._send(b"\xe0\x00")  # DISCONNECT
            except OSError:
                pass
        self.close()

    def close(self):
        """Drop the socket without DISCONNECT: the broker publishes the will."""
        sock = self._sock
        self._sock = None
        self._poller = None
        self.connected = False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def socket(self):
        """The connected socket (None when closed), for the caller's own ``select.poll``: a
        board's poll registers socket objects, not file descriptors."""
        return self._sock

    def _need(self):
        if self._sock is None:
            raise MQTTError("not_connected", why("mq_notconn"))

    # --- subscribe ----------------------------------------------------------------------------

    # --- publish ------------------------------------------------------------------------------

    def publish(self, topic, payload, qos=0, retain=False):
        """Send one message; return its packet id (0 for QoS 0). Does not wait for PUBACK."""
        return self.publish_parts(topic, (_b(payload),), qos, retain)

    def publish_parts(self, topic, parts, qos=1, retain=False):
        """Send the concatenation of ``parts``: bytes, or ``(path, offset, length)`` slices of
        files, read 512 bytes at a time (a camera frame is larger than the heap).

        Every slice is checked before a byte goes out (ValueError; the connection stays up),
        because a packet cannot be abandoned halfway.
        """
        self._need()
        tb = _check(topic, qos)
        if b"+" in tb or b"#" in tb:
            raise ValueError(why("mq_wild", topic))
        total = 0
        for part in parts:
            if isinstance(part, tuple):
                path, offset, length = part
                try:
                    size = os.stat(path)[6]
                except OSError:
                    size = -1
                if offset < 0 or length < 0 or offset + length > size:
                    raise ValueError(why("mq_slice", path, size, length, offset))
                total += length
            elif isinstance(part, str):
                raise TypeError(why("mq_part"))
            else:
                total += len(part)
        rem = 2 + len(tb) + total + (2 if qos else 0)
        pid = 0
        if qos:
            if len(self._pending) >= MAX_INFLIGHT:
                raise MQTTError("inflight_full", why("mq_inflt", MAX_INFLIGHT))
            pid = self._new_pid()
        buf = self._tbuf
        buf[0] = _PUBLISH | qos << 1 | (1 if retain else 0)
        used = _put_str(buf, _put_len(buf, 1, rem), tb)
        if qos:
            buf[used] = pid >> 8
            buf[used + 1] = pid & 0xFF
            used += 2
        # Small pieces are gathered in the transmit buffer behind the header, so a short
        # message goes out in one write; big bytes go straight from the caller's object.
        mv = memoryview(buf)
        try:
            for part in parts:
                if isinstance(part, tuple):
                    path, offset, left = part
                    with open(path, "rb") as f:
                        f.seek(offset)
                        while left:
                            k = min(left, _BUF_BYTES - used)
                            got = f.readinto(mv[used : used + k], k)
                            if not got:
                                raise OSError(errno.EIO, why("mq_short", path, left))
                            used += got
                            left -= got
                            if used == _BUF_BYTES:
                                self._send(buf)
                                used = 0
                elif len(part) <= _BUF_BYTES - used:
                    buf[used : used + len(part)] = part
                    used += len(part)
                else:
                    if used:
                        self._send(buf, used)
                        used = 0
                    self._send(part)
            if used:
                self._send(buf, used)
        except (OSError, MQTTError):
            self.close()  # the packet is cut off: the stream cannot be resumed
            raise
        if qos:
            self._pending.add(pid)
        return pid

    def _new_pid(self):
        pid = self._pid
        while True:
            pid = pid % 65535 + 1
            if pid not in self._pending:
                break
        self._pid = pid
        acked = self._acked
        for i in range(_ACKED_KEEP):
            if acked[i] == pid:
                acked[i] = -1  # an old ack of this id must not answer for the new message
        return pid

    def acked(self, pid):
        """True once the PUBACK for ``pid`` arrived (of the last 16 PUBACKs)."""
        return pid in self._acked

    def pending_acks(self):
        return len(self._pending)

    # --- receive ------------------------------------------------------------------------------

    def poll(self, timeout_ms=0):
        """Wait up to ``timeout_ms`` for data, handle every whole packet that is there, keep
        the link alive; return the number of packets handled.

        Returns early when the keepalive needs attention; a negative ``timeout_ms`` waits
        until then.
        """
        self._need()
        self._in_cb = False
        handled = 0
        try:
            ready = self._readable(self._keepalive(timeout_ms))
            while ready and handled < _MAX_PACKETS_PER_POLL:
                self._read_packet()
                handled += 1
                ready = self._readable(0)
            self._keepalive(0)
        except (OSError, MQTTError):
            if not self._in_cb:
                self.close()
            raise
        return handled

    def _readable(self, timeout_ms):
        # ipoll, unlike poll, allocates no result list: poll(0) runs in every main loop pass.
        for _ in self._poller.ipoll(timeout_ms):
            return True
        return False

    def _keepalive(self, timeout_ms):
        """Ping, or give up on a broker that did not answer one, when due; return how long
        ``poll`` may wait for data before the next keepalive action."""
        ka_ms = self.keepalive_s * 1000
        if not ka_ms:
            return timeout_ms
        now = time.ticks_ms()
        if self._ping_ms is not None:
            left = ka_ms // 2 - time.ticks_diff(now, self._ping_ms)
            if left <= 0:
                raise OSError(
                    errno.ETIMEDOUT,
                    why("mq_noping", self.host, self.port, ka_ms // 2),
                )
        else:
            left = ka_ms - max(time.ticks_diff(now, self._tx_ms), time.ticks_diff(now, self._rx_ms))
            if left <= 0:
                self._send(b"\xc0\x00")  # PINGREQ
                self._ping_ms = now
                left = ka_ms // 2
        return left if timeout_ms < 0 or left < timeout_ms else timeout_ms

    def _read_packet(self):
        ptype, n = self._read_header()
        self._ping_ms = None  # any packet shows the link is alive
        kind = ptype & 0xF0
        b = self._rbuf
        if kind == _PUBLISH:
            qos = (ptype >> 1) & 3
            small = n <= _BUF_BYTES  # the usual case: the whole packet in one read
            self._fill(n if small else 2)
            tlen = b[0] << 8 | b[1]
            size = n - 2 - tlen - (2 if qos else 0)  # of the payload
            if size < 0:
                raise MQTTError("protocol", why("mq_badpub"))
            mv = memoryview(b)
            raw = mv[2 : 2 + tlen] if small else None
            if not small and tlen <= _BUF_BYTES:
                self._fill(tlen)
                raw = mv[:tlen]
            elif raw is None:
                self._skip(tlen)
            topic = None
            if raw is not None:
                try:
                    topic = str(raw, "utf-8")
                except ValueError:
                    self.log(why("mq_utf8"))
            pid = 0
            if qos and small:
                pid = b[2 + tlen] << 8 | b[3 + tlen]
            elif qos:
                self._fill(2)
                pid = b[0] << 8 | b[1]
            payload = None
            got = 0  # of the payload, read from the socket
            if size > self.max_payload:
                self.log(why("mq_dropped", size, topic, self.max_payload))
            elif small:
                payload = bytes(mv[n - size : n])
            elif topic is not None:
                try:
                    # One buffer of the final size, filled however the socket splits the
                    # bytes. read() makes its buffer before it reads: out of heap, nothing
                    # has been read.
                    payload = self._sock.read(size)
                    got = len(payload) if payload else 0
                    if got < size:
                        buf = bytearray(size)
                        buf[:got] = payload or b""
                        payload = None
                        rest = memoryview(buf)[got:]
                        got = -1  # cut off inside _fill: nobody can tell where the stream is
                        self._fill(len(rest), rest)
                        got = size
                        payload = bytes(buf)
                except MemoryError:
                    # A message this heap cannot hold (a long cmd/notice on a 64 KiB
                    # terminal) would come again, retained or redelivered, on every
                    # reconnect, and the device would never stay online: skip the rest
                    # and acknowledge it, as one over max_payload.
                    # Only a notice may go this way: the gateway keeps it listed as unread. A
                    # schedule or an ack is not sent again by itself, so for those the session
                    # drops unacknowledged and the broker delivers the message again.
                    if got < 0 or not topic.endswith("cmd/notice"):
                        raise
                    payload = buf = None
                    self.log(why("mq_nomem", size, topic))
            if payload is None and not small:
                self._skip(size - got)
            if payload is not None and topic is not None and self._cb is not None:
                self._in_cb = True
                self._cb(topic, payload)
                self._in_cb = False
            if qos == 1:
                ack = self._tbuf  # free: nothing is being sent while a packet is read
                ack[0] = _PUBACK
                ack[1] = 2
                ack[2] = pid >> 8
                ack[3] = pid & 0xFF
                self._send(ack, 4)
            return
        if n > _BUF_BYTES:
            self._skip(n)
            return
        self._fill(n)
        if kind == _PUBACK and n >= 2:
            pid = b[0] << 8 | b[1]
            if pid in self._pending:
                self._pending.remove(pid)
                self._acked[self._acked_i] = pid
                self._acked_i = (self._acked_i + 1) % _ACKED_KEEP
        elif kind == _SUBACK and n >= 3:
            self._suback = b[0] << 16 | b[1] << 8 | b[2]
        # PINGRESP needs nothing more; other types are not sent to a 3.1.1 QoS 0/1 client.

    def _read_header(self):
        self._fill(2)
        b = self._rbuf
        ptype = b[0]
        byte = b[1]
        n = byte & 0x7F
        shift = 7
        while byte & 0x80:
            if shift > 21:
                raise MQTTError("protocol", why("mq_badlen"))
            self._fill(1)
            byte = b[0]
            n |= (byte & 0x7F) << shift
            shift += 7
        self._rx_ms = time.ticks_ms()
        return ptype, n

    # --- socket -------------------------------------------------------------------------------

    def _fill(self, n, buf=None):
        """Read exactly ``n`` bytes into ``buf`` (the start of the receive buffer by default),
        however the socket splits them; the common whole read allocates nothing."""
        if buf is None:
            buf = self._rbuf
        sock = self._sock
        got = 0
        while got < n:
            if got:
                r = sock.readinto(memoryview(buf)[got:n], n - got)
            else:
                r = sock.readinto(buf, n)
            if r is None:
                raise OSError(errno.ETIMEDOUT, why("mq_silent"))
            if not r:
                raise OSError(errno.ECONNRESET, why("mq_closed"))
            got += r

    def _skip(self, n):
        while n:
            k = min(n, _BUF_BYTES)
            self._fill(k)
            n -= k

    def _send(self, data, n=-1):
        if n < 0:
            n = len(data)
        sock = self._sock
        off = 0
        while off < n:
            w = sock.write(data, off, n - off)  # stream write(buf, off, len): no slice copies
            if not w:
                raise OSError(errno.ETIMEDOUT, why("mq_sendto", self.timeout_s))
            off += w
        self._tx_ms = time.ticks_ms()


class Backoff:
    """Reconnect delays: exponential with decorrelated jitter, never under ``base_ms``.

    Each delay is drawn between ``base_ms`` and three times the previous one, capped at
    ``cap_ms``: devices that lost the same broker spread out instead of returning together,
    and none retries faster than ``base_ms``. ``rand()`` returns a float in [0, 1).
    """

    def __init__(self, base_ms=500, cap_ms=30000, rand=None):
        if not 0 < base_ms <= cap_ms:
            raise ValueError(why("mq_backoff"))
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self._rand = rand
        self._prev = base_ms

    def next_ms(self):
        r = self._rand() if self._rand else random.getrandbits(24) / 16777216
        delay = self.base_ms + int(r * (self._prev * 3 - self.base_ms))
        if delay > self.cap_ms:
            delay = self.cap_ms
        self._prev = delay
        return delay

    def reset(self):
        self._prev = self.base_ms
