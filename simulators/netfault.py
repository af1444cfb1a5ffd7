"""A TCP proxy in front of an MQTT broker that injects network faults, packet-exactly.

It is the lowest-layer fake Tack allows: the gateway and the devices run unchanged and talk to
a real broker; only the wire between a client and the broker misbehaves. The proxy splits each
direction into MQTT packets (fixed header: type, remaining-length varint), so a test can say
"drop everything from the client from the first PUBLISH on ``.../cmd/ack`` on" and the cut falls
on a packet boundary, every time. That makes races such as "the gateway committed a record and
published its ack, but its PUBACK never reached the broker" deterministic.

The proxy runs its own event loop in a background thread, so synchronous tests and gateways in
subprocesses can use it alike. Every control method is synchronous and thread-safe; when it
returns, the fault is in place.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

PacketPredicate = Callable[[int, "str | None"], bool]
"""Called with ``(packet_type, topic)`` for each packet; ``topic`` only for PUBLISH."""

# MQTT allows 256 MiB packets; the brokers Tack tests against cap at 1 MiB. A bigger length is a
# broken stream, and the proxy must not buffer a peer's fantasy.
MAX_PACKET_BYTES = 16 * 1024 * 1024
_READ_BYTES = 65536
_CONTROL_TIMEOUT_S = 5.0


class PacketType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class Direction(enum.StrEnum):
    CLIENT_TO_BROKER = "client_to_broker"
    BROKER_TO_CLIENT = "broker_to_client"


class MqttFramingError(ValueError):
    """The byte stream is not MQTT (bad remaining length); the connection is closed."""


@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    topic: str | None
    raw: bytes


class PacketSplitter:
    """Incremental MQTT packet splitter: ``feed(bytes)`` returns the packets now complete."""

    def __init__(self, max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_packet_bytes

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out: list[Packet] = []
        while True:
            packet = self._next()
            if packet is None:
                return out
            out.append(packet)

    def _next(self) -> Packet | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        length = 0
        multiplier = 1
        pos = 1
        while True:
            if pos >= len(buf):
                return None  # varint not complete yet
            byte = buf[pos]
            length += (byte & 0x7F) * multiplier
            pos += 1
            if not byte & 0x80:
                break
            multiplier *= 128
            if pos > 4:
                raise MqttFramingError("remaining length longer than 4 bytes")
        total = pos + length
        if total > self._max:
            raise MqttFramingError(f"packet of {total} bytes exceeds {self._max}")
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        ptype = raw[0] >> 4
        topic = None
        if ptype == PacketType.PUBLISH and length >= 2:
            topic_len = int.from_bytes(raw[pos : pos + 2], "big")
            topic = raw[pos + 2 : pos + 2 + topic_len].decode("utf-8", errors="replace")
        return Packet(ptype, topic, raw)


@dataclass(frozen=True, slots=True)
class ProxyStats:
    connections_total: int
    connections_open: int
    packets_client_to_broker: int
    bytes_client_to_broker: int
    packets_broker_to_client: int
    bytes_broker_to_client: int
    dropped_packets_client_to_broker: int
    dropped_bytes_client_to_broker: int
    dropped_packets_broker_to_client: int
    dropped_bytes_broker_to_client: int


class _Blackhole:
    """One direction's fault: a predicate that arms it, then drop-everything until healed."""

    def __init__(self) -> None:
        self.predicate: PacketPredicate | None = None
        self.active = False
        self.triggered = threading.Event()


class _Conn:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class MqttFaultProxy:
    """``with MqttFaultProxy(broker.host, broker.port) as proxy:`` then point clients at
    ``proxy.host:proxy.port``."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = listen_host
        self.port = 0
        self._lock = threading.Lock()
        self._holes = {d: _Blackhole() for d in Direction}
        self._counts = dict.fromkeys(
            ("conns", "c2b_p", "c2b_b", "b2c_p", "b2c_b", "c2b_dp", "c2b_db", "b2c_dp", "b2c_db"),
            0,
        )
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("MqttFaultProxy already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except Exception as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name="tack-netfault", daemon=True)
        self._thread.start()
        ready.wait(_CONTROL_TIMEOUT_S)
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"fault proxy could not listen on {self.host}") from failure[0]

    async def _open(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close every connection and the listener; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            self._call(self._close())
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_CONTROL_TIMEOUT_S)
        self._thread = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self) -> MqttFaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        loop = self._loop
        if loop is None or self._thread is None or not loop.is_running():
            coro.close()
            raise RuntimeError("MqttFaultProxy is not running; call start() first")
        asyncio.run_coroutine_threadsafe(coro, loop).result(_CONTROL_TIMEOUT_S)

    # -- faults ------------------------------------------------------------------------------

    def blackhole_client_to_broker_after(self, predicate: PacketPredicate) -> None:
        """From the first client packet for which ``predicate`` is true (that packet included),
        drop everything clients send, on every connection, until :meth:`heal`."""
        self._arm(Direction.CLIENT_TO_BROKER, predicate)

    def blackhole_broker_to_client_after(self, predicate: PacketPredicate) -> None:
        """The same for what the broker sends to clients (e.g. lose an ack on its way)."""
        self._arm(Direction.BROKER_TO_CLIENT, predicate)

    def blackhole_client_to_broker(self) -> None:
        """Drop everything clients send from now on."""
        self._arm(Direction.CLIENT_TO_BROKER, lambda _type, _topic: True)

    def _arm(self, direction: Direction, predicate: PacketPredicate) -> None:
        hole = self._holes[direction]
        with self._lock:
            hole.predicate = predicate
            hole.active = False
            hole.triggered.clear()

    def blackholed(self, direction: Direction = Direction.CLIENT_TO_BROKER) -> bool:
        return self._holes[direction].triggered.is_set()

    def wait_blackholed(
        self, timeout_s: float, direction: Direction = Direction.CLIENT_TO_BROKER
    ) -> bool:
        """Block until the predicate fired; False when ``timeout_s`` passed first."""
        return self._holes[direction].triggered.wait(timeout_s)

    def heal(self) -> None:
        """Forward everything again, in both directions; packets already dropped stay lost."""
        with self._lock:
            for hole in self._holes.values():
                hole.predicate = None
                hole.active = False
                hole.triggered.clear()

    def cut(self) -> None:
        """Close every current connection on both sides at once (a reset, not a clean close).
        New connections are accepted as before."""
        self._call(self._cut())

    async def _cut(self) -> None:
        self._abort_all()

    def _abort_all(self) -> None:
        for conn in list(self._conns):
            conn.abort()

    def pause(self) -> None:
        """Stop forwarding in both directions but keep the sockets open (a stalled link)."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def stats(self) -> ProxyStats:
        with self._lock:
            c = dict(self._counts)
            open_now = len(self._conns)
        return ProxyStats(
            connections_total=c["conns"],
            connections_open=open_now,
            packets_client_to_broker=c["c2b_p"],
            bytes_client_to_broker=c["c2b_b"],
            packets_broker_to_client=c["b2c_p"],
            bytes_broker_to_client=c["b2c_b"],
            dropped_packets_client_to_broker=c["c2b_dp"],
            dropped_bytes_client_to_broker=c["c2b_db"],
            dropped_packets_broker_to_client=c["b2c_dp"],
            dropped_bytes_broker_to_client=c["b2c_db"],
        )

    # -- forwarding (proxy thread) -----------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError as exc:
                log.info(
                    "fault proxy: upstream %s:%d unreachable: %s",
                    self.upstream_host,
                    self.upstream_port,
                    exc,
                )
                writer.transport.abort()
                return
            conn = _Conn(writer, up_writer)
            with self._lock:
                self._conns.add(conn)
                self._counts["conns"] += 1
            try:
                pumps = [
                    asyncio.create_task(
                        self._pump(reader, up_writer, Direction.CLIENT_TO_BROKER),
                        name="tack-netfault.c2b",
                    ),
                    asyncio.create_task(
                        self._pump(up_reader, writer, Direction.BROKER_TO_CLIENT),
                        name="tack-netfault.b2c",
                    ),
                ]
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                with self._lock:
                    self._conns.discard(conn)
                conn.abort()
        finally:
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        assert self._flowing is not None
        splitter = PacketSplitter()
        hole = self._holes[direction]
        c2b = direction is Direction.CLIENT_TO_BROKER
        key = "c2b" if c2b else "b2c"
        while True:
            await self._flowing.wait()
            try:
                data = await reader.read(_READ_BYTES)
            except ConnectionError:
                data = b""
            # A stalled link holds what it read, and a close, until it is resumed: a read that
            # was already waiting when pause() came must not deliver them.
            await self._flowing.wait()
            if not data:
                return
            try:
                packets = splitter.feed(data)
            except MqttFramingError as exc:
                log.warning("fault proxy: %s stream is not MQTT: %s", direction, exc)
                return
            out = bytearray()
            for packet in packets:
                if self._should_drop(hole, packet):
                    with self._lock:
                        self._counts[f"{key}_dp"] += 1
                        self._counts[f"{key}_db"] += len(packet.raw)
                    continue
                out += packet.raw
                with self._lock:
                    self._counts[f"{key}_p"] += 1
                    self._counts[f"{key}_b"] += len(packet.raw)
            if not out:
                continue
            # A pause that began while this read was pending still holds back its bytes.
            await self._flowing.wait()
            try:
                writer.write(bytes(out))
                await writer.drain()
            except ConnectionError:
                return

    def _should_drop(self, hole: _Blackhole, packet: Packet) -> bool:
        with self._lock:
            if hole.active:
                return True
            predicate = hole.predicate
        if predicate is None:
            return False
        try:
            fire = predicate(packet.type, packet.topic)
        except Exception:
            log.exception("fault proxy: predicate failed; forwarding the packet")
            return False
        if not fire:
            return False
        with self._lock:
            if hole.predicate is predicate:  # not healed or re-armed meanwhile
                hole.active = True
                hole.triggered.set()
                return True
        return False
