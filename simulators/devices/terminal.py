"""A simulated clock-in terminal: protocol v1 over paho-mqtt, with a durable outbox.

It behaves as the firmware must: every punch is committed to the outbox before it is
published, and it leaves the outbox only on the gateway's application-level ack on
``cmd/ack``. The broker's PUBACK proves nothing here; only the gateway's ack (sent after its
commit) does. Unacknowledged punches are published again, same id and same seq, after
``ack_timeout_s``, after every reconnect, and after a restart of the process.

Threads: paho runs its network thread (``loop_start``) and the terminal runs one sender thread
for reconnect resends and ack timeouts. The public methods are safe from any thread; the
``async`` helpers never block the event loop.

Ordering: every publish happens under one send lock, a reconnect first republishes the whole
outbox oldest first before any new punch goes out, and resends go out oldest first. So the first
copy of each message reaches the gateway in ``seq`` order, unless the gateway defers one
(``busy``) or a copy is lost after a later one got through (the gateway orders by ``seq``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import enum
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode as MqttReasonCode

from devices.protocol import (
    Ack,
    AckStatus,
    CredentialType,
    Envelope,
    Presence,
    ProtocolError,
    PunchBody,
    TackError,
    decode_ack,
    encode_presence,
    topic,
)
from simulators.devices.outbox import Outbox, OutboxEntry, new_msg_id

log = logging.getLogger(__name__)

FIRMWARE = "sim-0.1"
# The sender thread's period: ack timeouts and retry_s are seconds, so 0.1 s is precise enough
# and keeps a 100-device fleet from spending its CPU on wake-ups.
_TICK_S = 0.1
# Enough for a long fleet run's percentiles without letting memory grow without bound.
_LATENCIES_KEPT = 200_000


class TerminalClosedError(TackError):
    """The terminal stopped before the punch was acknowledged; it stays in the outbox."""


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """One terminal. ``state_dir`` is the device's own "flash": outbox, seq and boot counters."""

    site: str
    device_id: str
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    ack_timeout_s: float = 5.0
    # Used when a transient rejection (busy, store_unavailable) carries no retry_s.
    default_retry_s: float = 1.0
    keepalive_s: int = 15
    # paho's reconnect backoff takes whole seconds.
    reconnect_min_s: int = 1
    reconnect_max_s: int = 8
    # The gateway PUBACKs only after its commit, so allow a window of unconfirmed publishes.
    max_inflight: int = 100
    firmware: str = FIRMWARE
    client_id: str | None = None
    # Broker credentials (username = device id, from `tack devices add`) and, for a TLS
    # listener, the CA certificate the broker's must chain to (`tack broker config`'s ca.crt).
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @property
    def mqtt_client_id(self) -> str:
        # The site is part of it: two sites may share a broker and reuse device ids.
        return self.client_id or f"tack-dev-{self.site}-{self.device_id}"


@dataclass(frozen=True, slots=True)
class TerminalStats:
    """Counters of one terminal since it started.

    Every message ends in exactly one of ``accepted``, ``duplicate`` (its first ack said the
    gateway already had it, e.g. an earlier copy's ack was lost), ``rejected`` (by reason, final)
    or is still in the outbox; so ``sent + reloaded == accepted + duplicate + sum(rejected) +
    outbox_depth``. ``deferred`` counts transient rejections (the message was kept and retried),
    ``resent`` every publish after a message's first in this run, ``stray_acks`` acks for
    messages no longer pending (a second ack after a resend).
    """

    device_id: str
    boot: int
    connected: bool
    sent: int
    reloaded: int
    accepted: int
    duplicate: int
    rejected: Mapping[str, int]
    deferred: Mapping[str, int]
    resent: int
    stray_acks: int
    outbox_depth: int
    reconnects: int
    last_verdict: str | None
    last_ack_latency_ms: float | None
    first_seq: int | None
    last_seq: int | None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def acked(self) -> int:
        return self.accepted + self.duplicate + self.rejected_total


class PunchHandle:
    """What :meth:`Terminal.punch` returns: the message's id and seq, and a future of its ack.

    The future resolves with the final ack (accepted, duplicate or a final rejection), or fails
    with :class:`TerminalClosedError` when the terminal stops first.
    """

    __slots__ = ("future", "msg_id", "seq")

    def __init__(self, msg_id: str, seq: int, future: concurrent.futures.Future[Ack]) -> None:
        self.msg_id = msg_id
        self.seq = seq
        self.future = future

    def __repr__(self) -> str:
        return f"PunchHandle(msg_id={self.msg_id!r}, seq={self.seq}, done={self.done()})"

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout_s: float | None = None) -> Ack:
        """Block until the ack; raises ``TimeoutError`` (the punch stays in the outbox)."""
        return self.future.result(timeout=timeout_s)

    async def wait(self, timeout_s: float | None = None) -> Ack:
        """Await the ack without blocking the loop; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            # shield: a caller's timeout must not cancel the shared future; the ack may still come.
            return await asyncio.shield(asyncio.wrap_future(self.future))


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class _Pending:
    """In-memory companion of one outbox row. Guarded by the terminal's state lock."""

    __slots__ = ("deadline", "deferred_until", "entry", "future", "info", "publishes")

    def __init__(self, entry: OutboxEntry, future: concurrent.futures.Future[Ack] | None) -> None:
        self.entry = entry
        self.future = future
        self.info: mqtt.MQTTMessageInfo | None = None
        self.deadline: float | None = None  # monotonic time the ack is due; None until sent
        self.deferred_until: float | None = None  # set by a transient rejection
        self.publishes = 0


def _transport_done(info: mqtt.MQTTMessageInfo | None) -> bool:
    """Whether the broker PUBACKed this publish. paho raises for publishes it queued while
    disconnected; those are still paho's to deliver, so they count as not done."""
    if info is None:
        return False
    try:
        return info.is_published()
    except (ValueError, RuntimeError):
        return False


class Terminal:
    """A single-use simulated terminal: ``start()`` once, ``stop()`` once. To simulate a reboot,
    make a new ``Terminal`` with the same ``state_dir``: the outbox is reloaded and drained, the
    seq continues and the boot counter goes up."""

    def __init__(self, config: TerminalConfig) -> None:
        if config.ack_timeout_s <= 0 or config.default_retry_s <= 0:
            raise ValueError("ack_timeout_s and default_retry_s must be positive")
        if config.ca_file is not None and not config.ca_file.is_file():
            raise ValueError(
                f"CA file {config.ca_file} does not exist; give the ca.crt that "
                "`tack broker config` wrote"
            )
        self.config = config
        # topic() validates site and device id, so a bad one fails here, not on the wire.
        self._evt_topic = topic(config.site, config.device_id, "evt", "punch")
        self._ack_topic = topic(config.site, config.device_id, "cmd", "ack")
        self._presence_topic = topic(config.site, config.device_id, "state", "online")
        self._cmd_filter = self._ack_topic.rsplit("/", 1)[0] + "/#"

        self._state = _State.NEW
        # Lock order: _send_lock, then _lock, then the outbox's own lock. Never the reverse.
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()

        self._pending: dict[str, _Pending] = {}
        self._connected = False
        self._link_ready = False  # connected AND the outbox was republished on this connection
        self._resync_needed = False
        self._generation = 0  # bumped per CONNACK, so a stale resync cannot mark a new link ready

        self._boot = 0
        self._sent = 0
        self._reloaded = 0
        self._accepted = 0
        self._duplicate = 0
        self._rejected: collections.Counter[str] = collections.Counter()
        self._deferred: collections.Counter[str] = collections.Counter()
        self._resent = 0
        self._stray_acks = 0
        self._reconnects = 0
        self._last_verdict: str | None = None
        self._last_latency_ms: float | None = None
        self._first_seq: int | None = None
        self._last_seq: int | None = None
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=_LATENCIES_KEPT)

        self._outbox: Outbox | None = None
        self._client: mqtt.Client | None = None
        self._sender: threading.Thread | None = None

    # -- identity and state ------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self.config.device_id

    @property
    def boot(self) -> int:
        return self._boot

    @property
    def connected(self) -> bool:
        """True once connected and the outbox has been republished on this connection."""
        with self._lock:
            return self._link_ready

    def __repr__(self) -> str:
        return f"Terminal({self.config.site}/{self.device_id}, {self._state.value})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the outbox, count a boot and start connecting; returns without waiting for the
        broker (use :meth:`wait_connected_sync` or :meth:`wait_connected`)."""
        if self._state is not _State.NEW:
            raise RuntimeError(
                f"{self!r} was already started; make a new Terminal with the same state_dir"
            )
        cfg = self.config
        outbox = Outbox(cfg.state_dir)
        try:
            self._boot = outbox.bump_boot()
            reloaded = outbox.pending()
        except BaseException:
            outbox.close()
            raise
        self._outbox = outbox
        with self._lock:
            for entry in reloaded:
                self._pending[entry.msg_id] = _Pending(entry, None)
            self._reloaded = len(reloaded)
        if reloaded:
            log.info(
                "device %s boot %d: %d punch(es) reloaded from the outbox (seq %d..%d)",
                cfg.device_id,
                self._boot,
                len(reloaded),
                reloaded[0].seq,
                reloaded[-1].seq,
            )

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.mqtt_client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.will_set(
            self._presence_topic,
            encode_presence(Presence(online=False, boot=self._boot, firmware=cfg.firmware)),
            qos=1,
            retain=True,
        )
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.max_inflight_messages_set(cfg.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = no_delay
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.ca_file is not None:
            client.tls_set_context(device_tls_context(cfg.ca_file))
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self._client = client
        self._state = _State.RUNNING
        client.loop_start()
        self._sender = threading.Thread(
            target=self._run_sender, name=f"tack-dev-{cfg.device_id}.sender", daemon=True
        )
        self._sender.start()

    def stop(self, *, graceful: bool = True, timeout_s: float = 2.0) -> None:
        """Stop the terminal; unacknowledged punches stay in the outbox for the next start.

        ``graceful=True`` publishes presence offline and disconnects cleanly. ``graceful=False``
        is a power cut: the socket is dropped without DISCONNECT, so the broker publishes the
        last will.
        """
        if self._state is not _State.RUNNING:
            self._state = _State.STOPPED
            return
        self._state = _State.STOPPED
        self._stopping.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=timeout_s + 1.0)
        client = self._client
        if client is not None:
            if graceful:
                self._goodbye(client, timeout_s)
                client.loop_stop()
            else:
                client.loop_stop()
                sock = client.socket()
                if sock is not None:
                    sock.close()
        with self._lock:
            self._connected = self._link_ready = False
            waiting = [p.future for p in self._pending.values() if p.future is not None]
            self._changed.notify_all()
        for future in waiting:
            _settle(future, exc=TerminalClosedError(f"{self.device_id} stopped before the ack"))
        if self._outbox is not None:
            self._outbox.close()

    def _goodbye(self, client: mqtt.Client, timeout_s: float) -> None:
        with self._lock:
            connected = self._connected
        if connected:
            offline = Presence(online=False, boot=self._boot, firmware=self.config.firmware)
            info = client.publish(
                self._presence_topic, encode_presence(offline), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout_s)
            except (ValueError, RuntimeError) as exc:
                log.info("device %s: offline presence not confirmed: %s", self.device_id, exc)
        client.disconnect()

    def __enter__(self) -> Terminal:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Terminal:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- punching ----------------------------------------------------------------------------

    def punch(self, card: str | None = None, *, emp: str | None = None) -> PunchHandle:
        """Store a punch durably, publish it if the link is up, and return its handle.

        Blocks for one SQLite commit (about a millisecond); from async code use
        :meth:`punch_and_wait` or ``asyncio.to_thread``.
        """
        if (card is None) == (emp is None):
            raise ValueError("a punch carries exactly one of card= and emp=")
        if self._state is not _State.RUNNING or self._outbox is None:
            raise RuntimeError(f"{self!r} is not running; call start() first")
        if card is not None:
            body = PunchBody(CredentialType.CARD, card)
        else:
            assert emp is not None  # narrowed by the check above
            body = PunchBody(CredentialType.EMPLOYEE, emp)
        device_id = self.device_id

        def make(seq: int, created_ms: int) -> Envelope:
            return Envelope(
                device_id=device_id,
                msg_id=new_msg_id(),
                seq=seq,
                device_ts_ms=created_ms,
                kind="punch",
                body=body,
            )

        future: concurrent.futures.Future[Ack] = concurrent.futures.Future()
        with self._send_lock:
            entry = self._outbox.append(make)  # durable first, then on the wire
            pending = _Pending(entry, future)
            with self._lock:
                self._pending[entry.msg_id] = pending
                self._sent += 1
                if self._first_seq is None:
                    self._first_seq = entry.seq
                self._last_seq = entry.seq
                ready = self._link_ready
            if ready:
                self._publish(pending)
        return PunchHandle(entry.msg_id, entry.seq, future)

    async def punch_and_wait(
        self, card: str | None = None, *, emp: str | None = None, timeout_s: float = 10.0
    ) -> Ack:
        """Punch and await the gateway's final ack. On ``TimeoutError`` the punch stays in the
        outbox and will still be delivered."""
        handle = await asyncio.to_thread(self.punch, card, emp=emp)
        return await handle.wait(timeout_s)

    # -- waiting -----------------------------------------------------------------------------

    def wait_connected_sync(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._link_ready, timeout_s)

    def wait_drained_sync(self, timeout_s: float) -> bool:
        """Block until the outbox is empty; False when ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout_s)

    async def wait_connected(self, timeout_s: float) -> bool:
        return await self._poll(lambda: self._link_ready, timeout_s)

    async def wait_drained(self, timeout_s: float) -> bool:
        """Await an empty outbox; False when ``timeout_s`` passed first."""
        return await self._poll(lambda: not self._pending, timeout_s)

    async def _poll(self, condition: Any, timeout_s: float) -> bool:
        # Polling, not a thread blocked on the condition: a fleet awaits hundreds of these and
        # must not tie up the default executor.
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if condition():
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    # -- numbers -----------------------------------------------------------------------------

    def stats(self) -> TerminalStats:
        with self._lock:
            return TerminalStats(
                device_id=self.device_id,
                boot=self._boot,
                connected=self._link_ready,
                sent=self._sent,
                reloaded=self._reloaded,
                accepted=self._accepted,
                duplicate=self._duplicate,
                rejected=dict(self._rejected),
                deferred=dict(self._deferred),
                resent=self._resent,
                stray_acks=self._stray_acks,
                outbox_depth=len(self._pending),
                reconnects=max(self._reconnects - 1, 0),
                last_verdict=self._last_verdict,
                last_ack_latency_ms=self._last_latency_ms,
                first_seq=self._first_seq,
                last_seq=self._last_seq,
            )

    def ack_latencies_ms(self) -> list[float]:
        """Punch-to-final-ack times of this run (resends and deferrals included), in ms."""
        with self._lock:
            return list(self._latencies_ms)

    # -- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: MqttReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("device %s: broker refused the connection: %s", self.device_id, reason_code)
            return
        # Always subscribe: a restarted broker without persistence has forgotten the session.
        client.subscribe(self._cmd_filter, qos=1)
        online = Presence(online=True, boot=self._boot, firmware=self.config.firmware)
        client.publish(self._presence_topic, encode_presence(online), qos=1, retain=True)
        with self._lock:
            self._connected = True
            self._link_ready = False
            self._resync_needed = True
            self._generation += 1
            self._reconnects += 1
        log.debug(
            "device %s connected (session present: %s)", self.device_id, flags.session_present
        )
        self._wake.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: MqttReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was = self._connected
            self._connected = self._link_ready = False
            self._changed.notify_all()
        if was and not self._stopping.is_set():
            log.info("device %s lost the broker (%s); reconnecting", self.device_id, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Never let an exception escape into paho: it would stop the network loop for good.
        try:
            if msg.topic != self._ack_topic:
                log.debug("device %s ignores command on %s", self.device_id, msg.topic)
                return
            try:
                ack = decode_ack(bytes(msg.payload))
            except (ProtocolError, ValueError) as exc:
                log.warning("device %s: unreadable ack ignored: %s", self.device_id, exc)
                return
            self._handle_ack(ack)
        except Exception:
            log.exception("device %s: error while handling %s", self.device_id, msg.topic)

    def _handle_ack(self, ack: Ack) -> None:
        with self._lock:
            pending = self._pending.get(ack.msg_id) if ack.msg_id else None
            if pending is None:
                self._stray_acks += 1
                return
            if ack.verdict is not None:
                self._last_verdict = ack.verdict.text
            if ack.status is AckStatus.REJECTED and ack.reason.transient:
                retry_s = ack.retry_s if ack.retry_s is not None else self.config.default_retry_s
                self._deferred[str(ack.reason)] += 1
                pending.deferred_until = time.monotonic() + max(retry_s, 0.0)
                pending.deadline = None
                log.debug(
                    "device %s msg %s seq %d deferred by the gateway (%s) for %.1fs",
                    self.device_id,
                    ack.msg_id,
                    pending.entry.seq,
                    ack.reason,
                    retry_s,
                )
                return
            del self._pending[pending.entry.msg_id]
            if ack.status is AckStatus.ACCEPTED:
                self._accepted += 1
            elif ack.status is AckStatus.DUPLICATE:
                self._duplicate += 1
            else:
                self._rejected[str(ack.reason)] += 1
            latency_ms = max(time.time() * 1000 - pending.entry.created_ms, 0.0)
            self._last_latency_ms = latency_ms
            self._latencies_ms.append(latency_ms)
            if ack.verdict is None and ack.status is AckStatus.REJECTED:
                self._last_verdict = ack.message or ack.reason.meaning
            self._changed.notify_all()
        assert self._outbox is not None  # set before the network thread starts
        self._outbox.remove(pending.entry.msg_id)
        if pending.future is not None:
            _settle(pending.future, result=ack)

    # -- sending (sender thread and punch callers) -------------------------------------------

    def _publish(self, pending: _Pending) -> None:
        """Publish one outbox entry; the caller holds ``_send_lock``."""
        assert self._client is not None
        info = self._client.publish(self._evt_topic, pending.entry.payload, qos=1)
        now = time.monotonic()
        with self._lock:
            pending.info = info
            pending.deadline = now + self.config.ack_timeout_s
            pending.deferred_until = None
            if pending.publishes:
                self._resent += 1
            pending.publishes += 1

    def _run_sender(self) -> None:
        while True:
            self._wake.wait(_TICK_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    resync = self._resync_needed and self._connected
                if resync:
                    self._resync()
                else:
                    self._resend_due()
            except Exception:
                log.exception("device %s: sender error; retrying next tick", self.device_id)

    def _resync(self) -> None:
        """After a (re)connect: republish the outbox oldest first, then let new punches through."""
        with self._send_lock:
            with self._lock:
                if not self._connected:
                    return
                generation = self._generation
                now = time.monotonic()
                batch = sorted(
                    (
                        p
                        for p in self._pending.values()
                        if p.deferred_until is None or p.deferred_until <= now
                    ),
                    key=lambda p: p.entry.seq,
                )
            for pending in batch:
                with self._lock:
                    still = pending.entry.msg_id in self._pending
                if still:
                    self._publish(pending)
            with self._lock:
                if self._connected and generation == self._generation:
                    self._resync_needed = False
                    self._link_ready = True
                    self._changed.notify_all()
        if batch:
            log.debug("device %s republished %d after connect", self.device_id, len(batch))

    def _resend_due(self) -> None:
        """Republish what the gateway deferred (retry_s passed) or never answered (ack timeout).

        Deadlines follow publish order, so the resends of one tick go out oldest first and the
        first copies still reach the gateway in seq order. A message whose publish the broker
        has not PUBACKed yet is left to paho, which resends it on reconnect: another copy behind
        it on the same stalled connection cannot help.
        """
        now = time.monotonic()
        with self._lock:
            if not self._link_ready or not self._pending:
                return
            batch = []
            for pending in self._pending.values():
                if pending.deferred_until is not None:
                    if pending.deferred_until <= now:
                        batch.append(pending)
                elif pending.deadline is not None and pending.deadline <= now:
                    if _transport_done(pending.info):
                        batch.append(pending)
                    else:
                        pending.deadline = now + self.config.ack_timeout_s
        if not batch:
            return
        batch.sort(key=lambda p: p.entry.seq)
        with self._send_lock:
            for pending in batch:
                with self._lock:
                    if not self._link_ready:
                        return
                    still = pending.entry.msg_id in self._pending
                if still:
                    self._publish(pending)
        log.debug("device %s resent %d unacknowledged", self.device_id, len(batch))


def device_tls_context(ca_file: Path) -> ssl.SSLContext:
    """What a device does: TLS 1.2+, trusting only the gateway's CA, checking the host name."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Turn off Nagle on the device's side. The delay that matters most is on
    the broker's side, though: Mosquitto without ``set_tcp_nodelay true`` holds the ack PUBLISH
    behind its PUBACK until the device's delayed ACK, about 40 ms per punch on Linux."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _settle(
    future: concurrent.futures.Future[Ack],
    *,
    result: Ack | None = None,
    exc: BaseException | None = None,
) -> None:
    """Resolve a punch future once; a waiter may have given up (cancelled) meanwhile."""
    try:
        if exc is not None:
            future.set_exception(exc)
        elif result is not None:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
