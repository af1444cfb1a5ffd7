"""MQTT transport on gmqtt: asyncio-native, persistent session, QoS 1, PUBACK after commit.

gmqtt runs on the gateway's own event loop (no network thread, no hop between threads) and,
with ``optimistic_acknowledgement=False``, sends a message's PUBACK only when the coroutine that
handles it returns. That coroutine is the gateway's handler itself, which returns after the
record is committed and the device's ack is queued. If the gateway dies in between, the broker
still holds the message for this client id (``clean_session=False``) and delivers it again on
reconnect, where the unique key turns it into a ``duplicate`` answer instead of a second record.

paho-mqtt served here first; under load its network thread and the event loop fought over the
GIL and ingest reached 0.34 of raw MQTT throughput on two cores, against about 0.45 with this
transport (``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from devices.protocol.errors import TackError
from gateway.config import MqttSettings
from gateway.transport import Handler, Inbound

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
CLOSE_HANDLERS_S = 5.0  # at close, how long the handlers of messages in flight may finish


# MQTT fixed-header types (the high nibble of a packet's first byte) whose writes may wait for
# the end of the event loop's current pass: PUBLISH (the device acks) and PUBACK.
_COALESCED_TYPES = frozenset({0x30, 0x40})
_DISCONNECT = b"\xe0"


class WriteCoalescer:
    """One socket write per pass of the event loop for the acks and PUBACKs made in it.

    A group commit resolves a hundred punches at once; their handlers each publish an ack and
    return a PUBACK, which gmqtt writes one by one: two ``send()`` calls per punch, about a
    tenth of the gateway's time under load. Here PUBLISH and PUBACK packets are gathered and
    written together at the end of the pass (``call_soon``), in the order they were made. Any
    other packet (CONNECT, SUBSCRIBE, PINGREQ, DISCONNECT) writes what is gathered first, then
    itself, so nothing is held behind a disconnect; after a DISCONNECT nothing more is written
    on this connection (gmqtt would only log a write to a closed socket). A packet gathered when
    the connection drops is lost as an unsent one would be: the broker redelivers what was not
    PUBACKed and the device resends what was not acked.

    Installed on each new gmqtt connection over its ``write_data``; gmqtt has no hook for it.
    """

    def __init__(self, write: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
        self._write = write
        self._loop = loop
        self._parts: list[bytes] = []
        self._disconnected = False
        self.writes = 0  # socket writes made, for tests and curiosity

    @classmethod
    def install(cls, protocol: Any) -> WriteCoalescer | None:
        """Wrap ``protocol.write_data``; ``None`` (writes stay one by one) if gmqtt changed."""
        write = getattr(protocol, "write_data", None)
        if write is None:
            return None
        installed = getattr(write, "__self__", None)
        if isinstance(installed, cls):
            return installed
        coalescer = cls(write, asyncio.get_running_loop())
        protocol.write_data = coalescer.write
        return coalescer

    def write(self, data: bytes) -> None:
        if self._disconnected:
            # A handler that finished after the gateway said goodbye (a last will handled at
            # shutdown): its PUBACK cannot go. The broker keeps the message for this session.
            log.debug("packet after DISCONNECT not written (type 0x%02x)", data[0] if data else 0)
            return
        if data and data[0] & 0xF0 in _COALESCED_TYPES:
            if not self._parts:
                self._loop.call_soon(self.flush)
            self._parts.append(data)
            return
        self.flush()
        self.writes += 1
        self._write(data)
        self._disconnected = data[:1] == _DISCONNECT

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            self.writes += 1
            self._write(data)


class LinkError(TackError):
    """The broker could not be reached or refused the gateway."""


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate checked against ``mqtt.ca_file`` (or the
    system's CAs) and its name against ``mqtt.host``; there is no switch to skip either."""
    ca_file = settings.ca_file
    if ca_file is not None and not ca_file.is_file():
        raise LinkError(
            f"mqtt.ca_file {ca_file} does not exist; give the broker's CA certificate (ca.crt "
            "in the folder `tack broker config` wrote) or leave it out to use the system's CAs"
        )
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except ssl.SSLError as exc:
        raise LinkError(f"mqtt.ca_file {ca_file} is not a PEM CA certificate ({exc})") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class MqttTransport:
    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        subscriptions: Sequence[str],
        handler: Handler,
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._handler = handler
        self.connected = asyncio.Event()
        self.connects = 0
        self._closing = False
        self._held: set[asyncio.Future[int]] = set()
        # Handlers running now: closing waits for them, so none outlives the store it writes to.
        self._handling = 0
        self._handled = asyncio.Event()
        self._handled.set()
        self._connector: asyncio.Task[None] | None = None
        self.coalescer: WriteCoalescer | None = None
        client = gmqtt.Client(client_id, clean_session=False, optimistic_acknowledgement=False)
        if settings.username:
            client.set_auth_credentials(settings.username, settings.password or None)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": RECONNECT_MIN_S})
        client.on_connect = self._gmqtt_connect
        client.on_disconnect = self._gmqtt_disconnect
        client.on_message = self._gmqtt_message
        self._client = client
        self._ssl = tls_context(settings) if settings.tls else False

    async def __aenter__(self) -> MqttTransport:
        # The first connection is retried here; once connected, gmqtt reconnects by itself.
        # A gateway that starts before its broker simply waits for it.
        self._connector = asyncio.create_task(self._connect(), name="tack.mqtt.connect")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        # Unsettled messages stay with the broker and come again on the next connection.
        for fut in self._held:
            fut.cancel()
        # Handlers under way finish while the connection is still up, so their acks and
        # PUBACKs go out instead of meeting a closed socket.
        await self._wait_handlers()
        if self._client.is_connected:
            try:
                await self._client.disconnect()
            except Exception:
                log.warning("broker connection did not close cleanly", exc_info=True)
        # Messages that came in while closing (last wills of devices going away at the same
        # time) are handled to the end before the gateway closes its store behind them.
        await self._wait_handlers()

    async def _wait_handlers(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_HANDLERS_S):
                await self._handled.wait()
        except TimeoutError:
            log.warning("%d message handlers still running at close", self._handling)

    async def _connect(self) -> None:
        delay_s = RECONNECT_MIN_S
        while True:
            try:
                await self._client.connect(
                    self._settings.host,
                    self._settings.port,
                    keepalive=self._settings.keepalive_s,
                    version=MQTTv311,
                    ssl=self._ssl,
                )
                return
            except Exception as exc:  # gmqtt raises OSError or its own MQTTConnectError
                log.warning(
                    "cannot reach the broker at %s:%s (%s); retrying in %.0f s",
                    self._settings.host,
                    self._settings.port,
                    exc,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._settings.reconnect_max_s)

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        except TimeoutError as exc:
            raise LinkError(
                f"no MQTT connection to {self._settings.host}:{self._settings.port} after "
                f"{timeout_s}s; is the broker running and mqtt.host/mqtt.port right?"
            ) from exc

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """QoS 1 by default; while disconnected the message is lost, which the device's outbox
        covers: it resends, and the gateway answers ``duplicate`` with the first verdict.
        QoS 0 is for messages that must not wait in a broker queue (``cmd/time``)."""
        try:
            self._client.publish(topic, payload, qos=qos, retain=retain)
        except Exception as exc:
            log.warning(
                "could not publish (%s); the device will resend", exc, extra={"topic": topic}
            )

    def _gmqtt_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        connection = getattr(client, "_connection", None)
        self.coalescer = WriteCoalescer.install(getattr(connection, "_protocol", None))
        if self.coalescer is None:
            log.info("gmqtt's writer not found: acks and PUBACKs are written one by one")
        for sub in self._subscriptions:
            client.subscribe(sub, qos=1)
        self.connects += 1
        self.connected.set()
        log.info(
            "connected to %s:%s (session %s)",
            self._settings.host,
            self._settings.port,
            "resumed" if flags else "new",
        )

    def _gmqtt_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("disconnected from the broker; reconnecting")
        self.connected.clear()

    async def _gmqtt_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]
    ) -> int:
        self._handling += 1
        self._handled.clear()
        try:
            settled = await self._handler(
                Inbound(
                    topic=topic,
                    payload=bytes(payload),
                    received_s=time.monotonic(),
                    transport=self.name,
                    redelivered=bool(properties.get("dup")),
                )
            )
        finally:
            self._handling -= 1
            if not self._handling:
                self._handled.set()
        if settled:
            return 0  # PUBACK "success"
        # Not settled: never PUBACK. The broker keeps the message for this session and
        # delivers it again after the next reconnect.
        held: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._held.add(held)
        try:
            return await held
        finally:
            self._held.discard(held)
