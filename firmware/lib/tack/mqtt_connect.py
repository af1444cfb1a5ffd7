"""Connecting and subscribing for tack.mqtt.MQTTClient: code a device runs once a connection.

``MQTTClient.connect()`` and ``subscribe()`` import this module, call it and unload it again,
so between connections its code takes none of the heap. The functions work on the client's
own state (its socket, buffers and packet ids), as its methods would.
"""

import errno
import select
import socket
import time

from micropython import const

from tack import unload, why
from tack.mqtt import MQTTError, _b, _check, _put_len, _put_str

_CONNACK = const(0x20)


def _len_size(n):
    """Bytes MQTT's remaining length ``n`` takes (7 bits a byte)."""
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4


def connect(client, sock=None):
    """Open a socket (unless given one), CONNECT, read CONNACK; see MQTTClient.connect()."""
    client.close()
    if sock is None:
        ai = socket.getaddrinfo(client.host, client.port, 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(ai[0], socket.SOCK_STREAM)
        try:
            sock.settimeout(client.timeout_s)
            try:
                sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: acks must not wait
            except (OSError, TypeError):
                pass
            sock.connect(ai[-1])
            if client.tls:
                # Loaded for the handshake only, so a plain-LAN device never loads it.
                from tack import mqtt_tls

                try:
                    sock = mqtt_tls.wrap(sock, client)
                finally:
                    del mqtt_tls
                    unload("tack.mqtt_tls")
        except Exception:
            sock.close()
            raise
    client._sock = sock
    try:
        client._send(connect_packet(client))
        ptype, n = client._read_header()
        if ptype != _CONNACK or n != 2:
            raise MQTTError("protocol", why("mq_connack", client.host, client.port, ptype))
        client._fill(2)
        rc = client._rbuf[1]
        if rc:
            text = why("mq_rc%d" % rc if rc < 6 else "mq_rc")
            raise MQTTError(rc, why("mq_refused", client.host, client.port, text, rc))
    except OSError as exc:
        client.close()
        if client.tls:
            raise
        # A plain CONNECT to a TLS port is dropped or left unanswered: say where to look.
        raise OSError(why("mq_noack", client.host, client.port, exc))
    except Exception:
        client.close()
        raise
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    client._poller = poller
    client._pending = set()
    client._ping_ms = None
    client._in_cb = False
    client.connected = True
    return bool(client._rbuf[0] & 1)


def connect_packet(client):
    """The CONNECT packet for the client's id, keepalive, session, will and credentials."""
    cid = _b(client.client_id)
    n = 12 + len(cid)  # protocol name, level, flags, keepalive, client id length
    flags = 0x02 if client.clean_session else 0
    will = client.will
    if will:
        wtopic, wpayload = _b(will[0]), _b(will[1])
        if will[2] != 0 and will[2] != 1 and will[2] != 2:
            raise ValueError(why("mq_willqos", will[2]))
        flags |= 0x04 | will[2] << 3 | (0x20 if will[3] else 0)
        n += 4 + len(wtopic) + len(wpayload)
    user = _b(client.user) if client.user else None
    password = _b(client.password) if user and client.password else None
    if user:
        flags |= 0x80
        n += 2 + len(user)
    if password:
        flags |= 0x40
        n += 2 + len(password)
    buf = bytearray(1 + _len_size(n) + n)
    buf[0] = 0x10
    i = _put_str(buf, _put_len(buf, 1, n), b"MQTT")
    buf[i] = 4
    buf[i + 1] = flags
    buf[i + 2] = client.keepalive_s >> 8
    buf[i + 3] = client.keepalive_s & 0xFF
    i = _put_str(buf, i + 4, cid)
    if will:
        i = _put_str(buf, _put_str(buf, i, wtopic), wpayload)
    if user:
        i = _put_str(buf, i, user)
    if password:
        i = _put_str(buf, i, password)
    return buf


def subscribe(client, topic, qos, wait=True):
    """SUBSCRIBE and wait for its SUBACK; see MQTTClient.subscribe().

    ``wait=False`` only sends it: the SUBACK, and the messages the broker sends before it (a
    session's backlog, retained ones), are then read by ``poll`` like any packet, with this
    module unloaded (``client._suback`` holds the SUBACK when it comes).
    """
    client._need()
    tb = _check(topic, qos)
    pid = client._new_pid()
    buf = client._tbuf
    buf[0] = 0x82
    i = _put_len(buf, 1, 5 + len(tb))
    buf[i] = pid >> 8
    buf[i + 1] = pid & 0xFF
    i = _put_str(buf, i + 2, tb)
    buf[i] = qos
    client._suback = -1
    client._in_cb = False
    try:
        client._send(buf, i + 1)
        if not wait:
            return None
        deadline = time.ticks_add(time.ticks_ms(), int(client.timeout_s * 1000))
        while client._suback >> 8 != pid:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, why("mq_nosub", topic, client.timeout_s))
            if client._readable(left):
                client._read_packet()
    except (OSError, MQTTError):
        if not client._in_cb:
            client.close()
        raise
    rc = client._suback & 0xFF
    if rc == 0x80:
        raise MQTTError(0x80, why("mq_subref", topic))
    return rc
