"""The device's link to the gateway: connect, announce, send the outbox, settle it on acks.

Both applications use it the same way: put a message in the outbox, then call ``step()`` from
the main loop. The rules it enforces are the protocol's (docs/protocol.md):

- every connect registers the last will (offline, this boot), then publishes the retained birth
  message and subscribes to ``cmd/+``; a refused or dropped connection is retried after a
  capped, jittered backoff;
- the outbox is sent oldest first, at most ``send_window`` messages awaiting their ack at once;
  a message with no ack after ``ack_timeout_s`` goes again with the same bytes, and after every
  reconnect the whole outbox goes again;
- a broker PUBACK settles nothing: a message leaves the outbox only on the gateway's
  ``cmd/ack`` (``accepted``, ``duplicate`` or a final ``rejected``); a transient rejection keeps
  it and holds it back for ``retry_s``;
- a punch with a camera frame sends the frame (``evt/frame``) just before the punch, both
  QoS 1, and resends both until the punch is acked (the gateway joins them by message id;
  topics are not ordered against each other, so it never waits for the frame);
- ``cmd/time`` sets the clock; any other command goes to the application.
"""

import time
from binascii import crc32

from tack import codec, unload, why
from tack.mqtt import Backoff, MQTTClient, MQTTError


def _key(msg_id):
    """A message's key in the in-flight tables: its id's CRC-32, cut to a small int (a clash
    only resends one message a little late)."""
    return crc32(msg_id) & 0x3FFFFFFF


class Link:
    def __init__(self, cfg, hal, clock, outbox, boot, fw, on_ack=None, on_command=None):
        self.ack_timeout_ms = cfg["ack_timeout_s"] * 1000
        self.send_window = cfg["send_window"]
        self.hal = hal
        self.clock = clock
        self.outbox = outbox
        self.boot = boot
        self.fw = fw
        self.on_ack = on_ack
        self.on_command = on_command
        site = cfg["site"]
        self.dev = cfg["device_id"]
        self.base = "tack/v1/%s/%s/" % (site, self.dev)
        # Settings read into locals of their own names: the key is then a qstr, not a str
        # this module would keep on the heap.
        mqtt_password = cfg["mqtt_password"]
        socket_timeout_s = cfg["socket_timeout_s"]
        reconnect_min_ms = cfg["reconnect_min_ms"]
        reconnect_max_ms = cfg["reconnect_max_ms"]
        # False, or the TLS context made at boot with its server name and CA (tack.config).
        mqtt_tls = cfg["mqtt_tls"]
        self.client = MQTTClient(
            "tack-dev-%s-%s" % (site, self.dev),
            cfg["mqtt_host"],
            cfg["mqtt_port"],
            keepalive_s=cfg["keepalive_s"],
            clean_session=False,
            user=cfg["mqtt_user"],
            password=mqtt_password,
            timeout_s=socket_timeout_s,
            tls=mqtt_tls,
        )
        self.client.set_callback(self._on_message)
        self.client.set_will(
            self.base + "state/online", codec.encode_presence(False, boot, fw), 1, True
        )
        self.backoff = Backoff(reconnect_min_ms, reconnect_max_ms)
        self._next_connect = time.ticks_ms()
        # Keyed by _key(msg id), a small int: holding an id str per message in flight would
        # cost ~100 bytes each.
        self._sent = {}  # -> ticks of the last send, for messages awaiting their ack
        self._hold = {}  # -> ticks before which a transient rejection holds it back
        self._dirty = True
        self._last_scan = time.ticks_ms()
        self.connected = False

    # --- connection -------------------------------------------------------------------------

    def _drop(self, exc):
        was = self.connected
        self.connected = False
        self.client.close()
        delay = self.backoff.next_ms()
        self._next_connect = time.ticks_add(time.ticks_ms(), delay)
        if was:
            self.hal.event("disconnected", {"why": str(exc), "retry_ms": delay})
        else:
            # Why a connect failed (refused password, untrusted broker, nobody listening) is
            # what the person fixing the device needs: the serial console on a board.
            self.hal.log(why("li_connf", exc, delay))

    def close(self):
        """Clean shutdown: say offline ourselves (a clean DISCONNECT cancels the will)."""
        if self.connected:
            try:
                self.client.publish(
                    self.base + "state/online", codec.encode_presence(False, self.boot, self.fw), 1, True
                )
                self.client.poll(200)
                self.client.disconnect()
            except (OSError, MQTTError):
                self.client.close()
        self.connected = False

    def fds(self):
        sock = self.client.socket()
        return [sock] if self.connected and sock is not None else []

    # --- main loop step ---------------------------------------------------------------------

    def step(self):
        now = time.ticks_ms()
        if not self.connected:
            if time.ticks_diff(now, self._next_connect) < 0:
                return
            # The handshake's code is loaded once for both steps (MQTTClient.connect() and
            # subscribe() would load it once each) and dropped after.
            try:
                from tack import mqtt_connect

                try:
                    mqtt_connect.connect(self.client)
                    # Subscribe before the birth: the gateway answers a birth with cmd/time at
                    # once (the broker takes a connection's packets in order). Not waiting for
                    # the SUBACK here: what comes before it (the retained cmd/notice, acks the
                    # last session did not acknowledge) is handled by poll() once this code is
                    # unloaded. Handled inside it, on a 64 KiB terminal, the 2.2 KB of this
                    # code left too little heap and every reconnect failed the same way.
                    mqtt_connect.subscribe(self.client, self.base + "cmd/+", 1, False)
                finally:
                    del mqtt_connect
                    unload("tack.mqtt_connect")
                ts = self.clock.now_ms() if self.clock.synced else None
                self.client.publish(self.base + "state/online", codec.encode_presence(True, self.boot, self.fw, ts), 1, True)
            except (OSError, MQTTError, MemoryError) as exc:
                # No room to load the handshake's code is a failed attempt too: try again after
                # the backoff, when the heap may have more to give, instead of stopping.
                self._drop(exc)
                return
            self.connected = True
            # The backoff starts again only once the SUBACK grants the subscription: a broker
            # that refuses it would otherwise be asked again every second, for ever.
            self._granted = False
            self._sent = {}  # resend the whole outbox on every (re)connect
            self._dirty = True
            self.hal.event("connected", {"outbox": len(self.outbox)})
        try:
            self.client.poll(0)
            sub = self.client._suback  # -1 until the SUBACK comes, then pid << 8 | code
            if sub & 0xFF == 0x80:  # refused
                raise MQTTError(0x80, why("mq_subref", self.base + "cmd/+"))
            if sub >= 0 and not self._granted:
                self._granted = True
                self.backoff.reset()
            self._send_due(now)
        except (OSError, MQTTError, MemoryError) as exc:
            # Out of heap half way through a packet (or its handler) leaves the stream where
            # nobody can tell: start the session again, as for a broken connection. Whatever
            # had no ack is sent again and the gateway answers "duplicate"; nothing is lost.
            self._drop(exc)

    def wake(self):
        """Something was added to the outbox: look at it on the next step."""
        self._dirty = True

    def _send_due(self, now):
        # Scanning the outbox costs a list; do it when something changed or a timer may be due.
        if not self._dirty and time.ticks_diff(now, self._last_scan) < 250:
            return
        self._dirty = False
        self._last_scan = now
        timeout_ms = self.ack_timeout_ms
        send_window = self.send_window
        waiting = 0
        start = 0
        while True:
            # A page at a time: a list of every id would not fit a small heap.
            page = self.outbox.ids(start, 8)
            if not page:
                return
            start += len(page)
            for msg_id in page:
                key = _key(msg_id)
                sent = self._sent.get(key)
                if sent is not None and time.ticks_diff(now, sent) < timeout_ms:
                    waiting += 1
                    if waiting >= send_window:
                        return
                    continue
                hold = self._hold.get(key)
                if hold is not None:
                    if time.ticks_diff(now, hold) < 0:
                        continue
                    del self._hold[key]
                if waiting >= send_window:
                    return
                try:
                    name, payload, frame = self.outbox.read(msg_id)
                except ValueError as exc:  # it went bad on flash since open()
                    self.outbox.remove(msg_id)
                    self.hal.event("damaged", {"id": msg_id, "why": str(exc)})
                    start -= 1  # the page shifted
                    continue
                if frame:
                    from tack import frames

                    frames.publish(self, msg_id, frame)
                self.client.publish(self.base + "evt/" + name, payload, 1)
                self.hal.event("sent", {"id": msg_id, "resend": sent is not None})
                self._sent[key] = now
                waiting += 1

    # --- incoming -----------------------------------------------------------------------------

    def _on_message(self, topic, payload):
        if not topic.startswith(self.base + "cmd/"):
            self.hal.log(why("li_ignored", topic))
            return
        name = topic[len(self.base) + 4 :]
        try:
            if name == "time":
                from tack import timesync

                try:
                    timesync.apply(self, payload)
                finally:
                    del timesync
                    unload("tack.timesync")
                return
            if name != "ack":
                if self.on_command is not None:
                    self.on_command(name, payload)
                return
            ack = codec.decode_ack(payload)
        except codec.ProtocolError as exc:
            self.hal.log(why("li_badcmd", name, exc.reason, exc))
            return
        msg_id = ack["msg_id"]
        action = codec.ack_action(ack, msg_id is not None and msg_id in self.outbox)
        if action == "remove":
            self.outbox.remove(msg_id)
            self._sent.pop(_key(msg_id), None)
            self._hold.pop(_key(msg_id), None)
            self._dirty = True
        elif action == "keep":
            self._sent.pop(_key(msg_id), None)
            retry_s = ack.get("retry_s")
            # No retry_s (internal_error): wait as long as for a missing ack.
            delay = int(retry_s * 1000) if retry_s else self.ack_timeout_ms
            self._hold[_key(msg_id)] = time.ticks_add(time.ticks_ms(), delay)
            self._dirty = True
        self.hal.event(
            "ack",
            {"id": msg_id, "status": ack["status"], "reason": ack["reason"], "action": action, "outbox": len(self.outbox)},
        )
        if self.on_ack is not None and action != "unmatched":
            self.on_ack(ack, action)
