"""MQTT transport on paho-mqtt: persistent session, QoS 1, and acknowledgement by hand.

``manual_ack=True`` is what makes the store durable end to end: paho does not PUBACK a device's
message on arrival; the gateway settles it only after the record is committed and the device's
ack is queued. If the gateway dies in between, the broker still holds the message for this
client id (``clean_session=False``) and delivers it again on reconnect, where the unique key
turns it into a ``duplicate`` answer instead of a second record.

paho runs its network loop in its own thread; every callback hops onto the asyncio loop with
``call_soon_threadsafe`` and does nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode

from devices.protocol.errors import TackError
from gateway.config import MqttSettings
from gateway.transport import Inbound

log = logging.getLogger(__name__)

# paho's own default is 20 messages in flight; acks go out at ingest rate, so allow many.
_MAX_QUEUED = 0  # unbounded: an ack is never dropped by the client while offline


class LinkError(TackError):
    """The broker could not be reached or refused the gateway."""


class MqttTransport:
    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: Callable[[Inbound], None],
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = asyncio.Event()
        self._closing = False
        self.connects = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(_MAX_QUEUED)
        client.reconnect_delay_set(min_delay=1, max_delay=int(settings.reconnect_max_s))
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        self._client = client

    async def __aenter__(self) -> MqttTransport:
        self._loop = asyncio.get_running_loop()
        # connect_async never blocks; paho's thread keeps retrying until the broker answers,
        # so a gateway that starts before its broker simply waits for it.
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s
        )
        self._client.loop_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        except TimeoutError as exc:
            raise LinkError(
                f"no MQTT connection to {self._settings.host}:{self._settings.port} after "
                f"{timeout_s}s; is the broker running and mqtt.host/mqtt.port right?"
            ) from exc

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish queued with rc=%s", info.rc, extra={"topic": topic})

    # paho thread ----------------------------------------------------------------------------

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: PahoReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        client.subscribe([(t, 1) for t in self._subscriptions])
        self._call(self._set_connected, True, flags.session_present)

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: PahoReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._set_connected, False, False)

    def _paho_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        mid, qos = msg.mid, msg.qos

        def settle() -> None:
            if qos:
                client.ack(mid, qos)

        self._call(
            self._on_message,
            Inbound(
                topic=msg.topic,
                payload=bytes(msg.payload),
                received_s=time.monotonic(),
                transport=self.name,
                redelivered=bool(msg.dup),
                settle=settle,
            ),
        )

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    # event loop ----------------------------------------------------------------------------

    def _set_connected(self, up: bool, session_present: bool) -> None:
        if up:
            self.connects += 1
            self.connected.set()
            log.info(
                "connected to %s:%s (session %s)",
                self._settings.host,
                self._settings.port,
                "resumed" if session_present else "new",
            )
        else:
            if self.connected.is_set() and not self._closing:
                log.warning("disconnected from the broker; paho reconnects with backoff")
            self.connected.clear()
