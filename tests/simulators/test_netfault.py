"""The MQTT fault proxy, between real paho clients and a real Mosquitto."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import AckStatus
from simulators.devices import Terminal, TerminalConfig
from simulators.mosquitto import Mosquitto, free_port
from simulators.netfault import (
    Direction,
    MqttFaultProxy,
    MqttFramingError,
    PacketSplitter,
    PacketType,
)
from tests.fixtures.ack_responder import AckResponder

WAIT_S = 10.0


class Peer:
    """A paho client that records what it receives and when it is (dis)connected."""

    def __init__(self, host: str, port: int, *, subscribe: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.connects = 0
        self.disconnects = 0
        self._subscribe = subscribe
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = 0
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        if self._subscribe:
            client.subscribe(self._subscribe, qos=1)
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def _on_subscribe(self, *args: object) -> None:
        with self.cond:
            self.subscribed += 1
            self.cond.notify_all()

    def _on_disconnect(self, *args: object) -> None:
        with self.cond:
            self.disconnects += 1
            self.cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.cond.notify_all()

    def wait(self, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
        with self.cond:
            return self.cond.wait_for(condition, timeout_s)

    def topics(self) -> list[str]:
        with self.cond:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(host: str, port: int, **kw: str) -> Peer:
        peer = Peer(host, port, **kw)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


@pytest.fixture
def proxy(mosquitto: Mosquitto) -> Iterator[MqttFaultProxy]:
    with MqttFaultProxy(mosquitto.host, mosquitto.port) as p:
        yield p


def test_splitter_handles_split_and_joined_packets() -> None:
    topic = b"tack/v1/s/d/cmd/ack"
    publish = bytes([0x32, 2 + len(topic) + 2 + 2]) + len(topic).to_bytes(2, "big") + topic
    publish += b"\x00\x07{}"
    ping = b"\xc0\x00"
    stream = ping + publish + ping
    splitter = PacketSplitter()
    packets = [p for byte in stream for p in splitter.feed(bytes([byte]))]
    assert [p.type for p in packets] == [PacketType.PINGREQ, PacketType.PUBLISH, PacketType.PINGREQ]
    assert packets[1].topic == "tack/v1/s/d/cmd/ack"
    assert b"".join(p.raw for p in packets) == stream
    assert [p.type for p in PacketSplitter().feed(stream)] == [12, 3, 12]
    # a 200-byte body has a two-byte remaining length
    big = bytes([0x30]) + bytes([0xC8, 0x01]) + b"\x00\x01a" + b"x" * 197
    assert PacketSplitter().feed(big)[0].raw == big
    with pytest.raises(MqttFramingError):
        PacketSplitter().feed(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(MqttFramingError):
        PacketSplitter(max_packet_bytes=100).feed(big)


def test_forwards_both_ways_and_counts(
    mosquitto: Mosquitto, proxy: MqttFaultProxy, peers: Callable[..., Peer], site: str
) -> None:
    sub = peers(mosquitto.host, mosquitto.port, subscribe=f"{site}/#")
    assert sub.wait(lambda: sub.subscribed == 1)
    pub = peers(proxy.host, proxy.port, subscribe=f"{site}/back")
    assert pub.wait(lambda: pub.subscribed == 1)
    pub.client.publish(f"{site}/a", b"1", qos=1).wait_for_publish(WAIT_S)
    assert sub.wait(lambda: sub.topics() == [f"{site}/a"])
    sub.client.publish(f"{site}/back", b"2", qos=1)
    assert pub.wait(lambda: pub.topics() == [f"{site}/back"])
    stats = proxy.stats()
    assert stats.connections_total == stats.connections_open == 1
    assert stats.packets_client_to_broker >= 3  # CONNECT, SUBSCRIBE, PUBLISH
    assert stats.packets_broker_to_client >= 4  # CONNACK, SUBACK, PUBACK, PUBLISH
    assert stats.bytes_client_to_broker > 0
    assert stats.bytes_broker_to_client > 0
    assert stats.dropped_packets_client_to_broker == 0


def test_blackhole_after_predicate_then_heal(
    mosquitto: Mosquitto, proxy: MqttFaultProxy, peers: Callable[..., Peer], site: str
) -> None:
    sub = peers(mosquitto.host, mosquitto.port, subscribe=f"{site}/#")
    assert sub.wait(lambda: sub.subscribed == 1)
    pub = peers(proxy.host, proxy.port)
    assert pub.wait(lambda: pub.connects == 1)
    seen: list[tuple[int, str | None]] = []

    def after_ack(packet_type: int, topic: str | None) -> bool:
        seen.append((packet_type, topic))
        return packet_type == PacketType.PUBLISH and (topic or "").endswith("/cmd/ack")

    proxy.blackhole_client_to_broker_after(after_ack)
    pub.client.publish(f"{site}/before", b"", qos=0)
    pub.client.publish(f"{site}/d/cmd/ack", b"", qos=1)
    pub.client.publish(f"{site}/after", b"", qos=0)
    assert proxy.wait_blackholed(WAIT_S)
    assert sub.wait(lambda: f"{site}/before" in sub.topics())
    # Prove nothing else got through: a marker sent by another client after the dropped ones
    # arrives, while the dropped ones still have not.
    marker = peers(mosquitto.host, mosquitto.port)
    assert marker.wait(lambda: marker.connects == 1)
    marker.client.publish(f"{site}/marker", b"", qos=1)
    assert sub.wait(lambda: f"{site}/marker" in sub.topics())
    pub.client.publish(f"{site}/still-dropped", b"", qos=0)
    assert proxy.wait_blackholed(0)
    assert sub.topics() == [f"{site}/before", f"{site}/marker"]
    assert (PacketType.PUBLISH, f"{site}/d/cmd/ack") in seen
    assert proxy.stats().dropped_packets_client_to_broker >= 2

    proxy.heal()
    assert not proxy.blackholed()
    pub.client.publish(f"{site}/healed", b"", qos=0)
    assert sub.wait(lambda: f"{site}/healed" in sub.topics())
    assert f"{site}/after" not in sub.topics()


def test_cut_disconnects_and_clients_reconnect(
    mosquitto: Mosquitto, proxy: MqttFaultProxy, peers: Callable[..., Peer]
) -> None:
    client = peers(proxy.host, proxy.port)
    assert client.wait(lambda: client.connects == 1)
    proxy.cut()
    assert client.wait(lambda: client.disconnects == 1)
    assert client.wait(lambda: client.connects == 2)  # paho reconnects through the proxy
    assert proxy.stats().connections_total == 2


def test_pause_holds_traffic_until_resume(
    mosquitto: Mosquitto, proxy: MqttFaultProxy, peers: Callable[..., Peer], site: str
) -> None:
    sub = peers(mosquitto.host, mosquitto.port, subscribe=f"{site}/#")
    assert sub.wait(lambda: sub.subscribed == 1)
    pub = peers(proxy.host, proxy.port)
    assert pub.wait(lambda: pub.connects == 1)
    proxy.pause()
    pub.client.publish(f"{site}/held", b"", qos=0)
    marker = peers(mosquitto.host, mosquitto.port)
    assert marker.wait(lambda: marker.connects == 1)
    marker.client.publish(f"{site}/marker", b"", qos=1)
    assert sub.wait(lambda: f"{site}/marker" in sub.topics())
    assert f"{site}/held" not in sub.topics()
    proxy.resume()
    assert sub.wait(lambda: f"{site}/held" in sub.topics())


def test_unreachable_upstream_closes_the_client(peers: Callable[..., Peer]) -> None:
    with MqttFaultProxy("127.0.0.1", free_port()) as dead:
        client = peers(dead.host, dead.port)
        assert client.wait(lambda: client.disconnects >= 1)
        assert client.connects == 0
    with pytest.raises(RuntimeError, match="not running"):
        dead.cut()


def test_terminal_recovers_from_a_blackholed_punch(
    mosquitto: Mosquitto,
    proxy: MqttFaultProxy,
    site: str,
    tmp_path: Path,
    ack_responder: Callable[..., AckResponder],
) -> None:
    """The punch is dropped on its way to the broker; after the cut, the terminal reconnects
    and republishes it from its outbox."""
    responder = ack_responder(mosquitto, site)
    terminal = Terminal(
        TerminalConfig(
            site=site, device_id="term-001", state_dir=tmp_path, host=proxy.host, port=proxy.port
        )
    )
    with terminal:
        assert terminal.wait_connected_sync(WAIT_S)
        proxy.blackhole_client_to_broker_after(
            lambda t, topic: t == PacketType.PUBLISH and (topic or "").endswith("/evt/punch")
        )
        handle = terminal.punch("C0001")
        assert proxy.wait_blackholed(WAIT_S)
        proxy.heal()
        proxy.cut()
        assert handle.result(WAIT_S).status is AckStatus.ACCEPTED
        assert [e.seq for e in responder.first_copies("term-001")] == [1]
        assert terminal.stats().reconnects == 1
    assert proxy.stats().dropped_packets_client_to_broker >= 1
    assert Direction.CLIENT_TO_BROKER.value == "client_to_broker"
