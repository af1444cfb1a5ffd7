"""A gateway that does nothing: it answers every punch with a canned ``accepted`` ack.

The benchmark's middle line (``bench/ingest.py``): the same MQTT traffic as the durable run (a
QoS 1 punch in, a QoS 1 ack out, both PUBACKed) through the gateway's own transport
(``gateway.transport.mqtt``), with no decoding, checking, storing or classifying. What the
durable run costs beyond this is the gateway's own work.

Run as ``python -m bench.echo HOST PORT SITE``; it prints ``ready`` once subscribed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from gateway.config import MqttSettings
from gateway.transport import Inbound
from gateway.transport.mqtt import MqttTransport


async def serve(host: str, port: int, site: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    transport: MqttTransport

    async def answer(msg: Inbound) -> bool:
        msg_id = json.loads(msg.payload)["id"]
        device = msg.topic.split("/")[3]
        ack = {"v": 1, "id": msg_id, "status": "accepted", "reason": "ok", "msg": ""}
        transport.publish(f"tack/v1/{site}/{device}/cmd/ack", json.dumps(ack).encode())
        return True

    settings = MqttSettings(host=host, port=port)
    transport = MqttTransport(settings, f"bench-echo-{site}", [f"tack/v1/{site}/+/evt/+"], answer)
    async with transport:
        await transport.wait_connected(30)
        await asyncio.sleep(0.3)
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
