"""Closing the MQTT transport while a message is being handled: the handler runs to its end
before the transport says it is closed, so the gateway never closes its store under it (a last
will arriving as the gateway stops was written to a closed database before)."""

from __future__ import annotations

import asyncio

import paho.mqtt.publish as publish

from gateway.config import MqttSettings
from gateway.transport import Inbound
from gateway.transport.mqtt import MqttTransport
from simulators.mosquitto import Mosquitto


async def test_close_waits_for_the_handler_of_a_message_in_flight(
    mosquitto: Mosquitto, site: str
) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_handler(msg: Inbound) -> bool:
        started.set()
        await asyncio.sleep(0.5)  # a store write that takes a while
        finished.set()
        return True

    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    where = f"tack/v1/{site}/dev-1/state/online"
    transport = MqttTransport(settings, f"close-{site}", [where], slow_handler)
    async with transport:
        await transport.wait_connected(10)
        await asyncio.to_thread(
            publish.single, where, b"{}", qos=1, hostname=mosquitto.host, port=mosquitto.port
        )
        await asyncio.wait_for(started.wait(), 10)
    assert finished.is_set(), "the transport closed while its handler was still running"
