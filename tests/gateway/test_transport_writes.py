"""The transport's writes under a burst, on a real Mosquitto: the acks and PUBACKs that one
group commit releases leave in a few socket writes instead of two per message, every reply
arrives in the order it was published, and every message is settled (none comes back on the
next connection)."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import MqttSettings
from gateway.transport import Inbound
from gateway.transport.mqtt import MqttTransport, WriteCoalescer
from simulators.mosquitto import Mosquitto

BURST = 60


async def test_a_released_burst_is_answered_in_few_writes_and_settled(
    mosquitto: Mosquitto, site: str
) -> None:
    commit = asyncio.Event()  # stands for the group commit every handler waits for
    arrived: list[str] = []
    published: list[str] = []
    requests = f"tack/v1/{site}/dev-1/evt/punch"
    replies = f"tack/v1/{site}/dev-1/cmd/ack"

    async def handler(msg: Inbound) -> bool:
        arrived.append(msg.payload.decode())
        if len(arrived) == BURST:
            commit.set()
        await commit.wait()
        published.append("re:" + msg.payload.decode())
        transport.publish(replies, b"re:" + msg.payload)
        return True

    got: list[str] = []
    all_replies = threading.Event()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{site}")

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        got.append(m.payload.decode())
        if len(got) == BURST:
            all_replies.set()

    device.on_message = on_message
    device.connect(mosquitto.host, mosquitto.port)
    device.subscribe(replies, qos=1)
    device.loop_start()

    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    transport = MqttTransport(settings, f"writes-{site}", [requests], handler)
    try:
        async with transport:
            await transport.wait_connected(10)
            await asyncio.sleep(0.2)  # the subscription is in place
            coalescer = transport.coalescer
            assert isinstance(coalescer, WriteCoalescer)
            before = coalescer.writes
            for n in range(BURST):
                device.publish(requests, f"{n:03d}", qos=1)
            await asyncio.wait_for(commit.wait(), 10)
            assert await asyncio.to_thread(all_replies.wait, 10), f"{len(got)} replies"
            await asyncio.sleep(0.2)  # the PUBACKs after the last reply
            # 60 replies and 60 PUBACKs: a handful of writes, not 120.
            assert coalescer.writes - before <= 10, coalescer.writes - before
        # In the order they were published: the gathered packets keep their order.
        assert got == published
        assert sorted(got) == [f"re:{n:03d}" for n in range(BURST)]

        # Every message was PUBACKed: the broker has nothing to deliver again to this session.
        again: list[str] = []

        async def record(msg: Inbound) -> bool:
            again.append(msg.payload.decode())
            return True

        async with MqttTransport(settings, f"writes-{site}", [requests], record) as second:
            await second.wait_connected(10)
            await asyncio.sleep(1.0)
        assert again == []
    finally:
        device.loop_stop()
        device.disconnect()


async def test_gathered_packets_keep_their_order_and_other_packets_wait_for_none() -> None:
    """The byte stream itself (a stand-in for gmqtt's socket writer): each ack's PUBLISH stays
    before the PUBACK made after it, a PINGREQ or DISCONNECT first writes what waits, and
    nothing follows a DISCONNECT."""
    stream: list[bytes] = []

    class Socket:
        def write_data(self, data: bytes) -> None:
            stream.append(bytes(data))

    sock = Socket()
    coalescer = WriteCoalescer.install(sock)
    assert coalescer is not None
    ack_1, puback_1, ack_2 = b"\x32\x05ack-1", b"\x40\x02\x00\x01", b"\x32\x05ack-2"
    sock.write_data(ack_1)
    sock.write_data(puback_1)
    sock.write_data(ack_2)
    assert stream == []  # gathered until the end of this pass of the loop
    sock.write_data(b"\xc0\x00")  # PINGREQ
    assert stream == [ack_1 + puback_1 + ack_2, b"\xc0\x00"]
    puback_2 = b"\x40\x02\x00\x02"
    sock.write_data(puback_2)
    await asyncio.sleep(0)  # the pass ends
    assert stream[-1] == puback_2
    sock.write_data(b"\xe0\x00")  # DISCONNECT with nothing waiting: written at once
    assert stream[-1] == b"\xe0\x00"
    written = len(stream)
    sock.write_data(b"\x40\x02\x00\x03")  # a PUBACK after goodbye: the socket is closing
    await asyncio.sleep(0)
    assert len(stream) == written
    assert WriteCoalescer.install(sock) is coalescer  # a reinstall does not wrap twice
