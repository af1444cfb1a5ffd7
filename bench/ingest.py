"""Durable punch ingest through a real Mosquitto into the gateway, beside raw MQTT.

All three runs use the same broker, the same number of clients and the same window of messages
in flight, so the ratio says what durability costs: in the durable run every punch is committed
to SQLite (synchronous=FULL) before the device's application-level ack is sent; in the raw run
a message only has to reach the broker (publish -> PUBACK). Between them, the echo run sends
the durable run's traffic to a gateway that does nothing (bench/echo.py): what the load
generator, the broker and the gateway's MQTT transport allow on this machine at best.

Writes ``bench/results.json`` and ``bench/results.md``. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import AckStatus, dumps
from gateway.config import load_settings
from gateway.store.roster import Person
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import seed
from tests.fixtures.processes import GatewayProcess, query, write_toml

RESULTS = Path(__file__).parent / "results.json"
TABLE = Path(__file__).parent / "results.md"


# A roster of this size: 20,000 punches are about ten each, as in a working week, so each
# punch's classification reads a person's few punches (a roster of 20 made it read thousands).
PEOPLE = 2000


@dataclass
class RunResult:
    name: str
    messages: int
    seconds: float
    msgs_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float


class _Window:
    """At most ``size`` messages in flight; latency from send to its answer.

    A raw publish's key (paho's mid) exists only after ``publish()`` returns, and its PUBACK may
    arrive before that; such an early answer is parked until the sender records its key.
    """

    def __init__(self, size: int) -> None:
        self._free = threading.Semaphore(size)
        self._sent: dict[Any, float] = {}
        self._early: dict[Any, float] = {}
        self.latencies_s: list[float] = []
        self.done = threading.Event()
        self.expected = 0
        self._lock = threading.Lock()

    def send(self, publish: Any) -> None:
        """``publish()`` sends one message and returns its key."""
        self._free.acquire()
        started = time.perf_counter()
        key = publish()
        with self._lock:
            answered = self._early.pop(key, None)
            if answered is None:
                self._sent[key] = started
                return
        self._finish(answered - started)

    def release(self, key: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            started = self._sent.pop(key, None)
            if started is None:
                self._early[key] = now
                return
        self._finish(now - started)

    def _finish(self, latency_s: float) -> None:
        with self._lock:
            self.latencies_s.append(latency_s)
            if len(self.latencies_s) >= self.expected:
                self.done.set()
        self._free.release()


def _client(client_id: str, broker: Mosquitto, inflight: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    c.connect(broker.host, broker.port, keepalive=60)
    return c


def _summarise(name: str, n: int, seconds: float, latencies_s: list[float]) -> RunResult:
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return RunResult(name, n, seconds, n / seconds, cuts[49] * 1000, cuts[98] * 1000)


def run_raw(broker: Mosquitto, n: int, clients: int, window: int, payload: bytes) -> RunResult:
    per = n // clients
    windows = [_Window(window // clients) for _ in range(clients)]
    conns = []
    for i, w in enumerate(windows):
        c = _client(f"bench-raw-{i}", broker, window)
        w.expected = per
        c.on_publish = lambda _c, _u, mid, _rc, _p, w=w: w.release(mid)
        c.loop_start()
        conns.append(c)

    def pump(c: mqtt.Client, w: _Window, idx: int) -> None:
        for _ in range(per):
            w.send(lambda: c.publish(f"bench/raw/{idx}", payload, qos=1).mid)

    start = time.perf_counter()
    threads = [
        threading.Thread(target=pump, args=(c, w, i))
        for i, (c, w) in enumerate(zip(conns, windows, strict=True))
    ]
    for t in threads:
        t.start()
    for w in windows:
        w.done.wait(300)
    seconds = time.perf_counter() - start
    for t in threads:
        t.join()
    for c in conns:
        c.disconnect()
        c.loop_stop()
    return _summarise(
        "raw QoS 1 publish -> PUBACK",
        per * clients,
        seconds,
        [x for w in windows for x in w.latencies_s],
    )


def wait_until_serving(broker: Mosquitto, site: str, timeout_s: float = 60.0) -> None:
    """Until the gateway answers: a punch from an unregistered device every half second, until
    its ``unknown_device`` ack comes back (nothing is stored for it). A fixed sleep was too short
    on a loaded machine, and punches sent before the gateway subscribed were never answered."""
    answered = threading.Event()
    c = _client(f"bench-{site}-probe", broker, 1)
    c.on_message = lambda _c, _u, _m: answered.set()
    c.subscribe(f"tack/v1/{site}/probe/cmd/ack", qos=1)
    c.loop_start()
    try:
        deadline = time.monotonic() + timeout_s
        seq = 0
        while not answered.wait(0.5):
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not answer within {timeout_s:.0f} s")
            seq += 1
            env = {"v": 1, "id": f"probe-{seq}", "dev": "probe", "seq": seq, "ts": 0}
            env |= {"kind": "punch", "body": {"card": "C0001"}}
            c.publish(f"tack/v1/{site}/probe/evt/punch", dumps(env), qos=1)
    finally:
        c.disconnect()
        c.loop_stop()


def run_durable(
    broker: Mosquitto,
    site: str,
    devices: list[str],
    n: int,
    window: int,
    name: str = "durable punch -> commit -> app ack",
) -> tuple[RunResult, int]:
    per = n // len(devices)
    windows = [_Window(window // len(devices)) for _ in devices]
    conns = []
    statuses: dict[str, int] = {}
    for dev, w in zip(devices, windows, strict=True):
        c = _client(f"bench-{site}-{dev}", broker, window)
        w.expected = per

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage, w: _Window = w) -> None:
            # The status and id are all the load generator needs; the protocol's full ack
            # decoder (devices.protocol.decode_ack) is a device's cost, not the gateway's.
            ack = json.loads(msg.payload)
            status = ack.get("status")
            statuses[status] = statuses.get(status, 0) + 1
            w.release(ack.get("id"))

        c.on_message = on_message
        c.subscribe(f"tack/v1/{site}/{dev}/cmd/ack", qos=1)
        c.loop_start()
        conns.append(c)
    time.sleep(0.3)

    def punches(dev: str, n_dev: int) -> list[tuple[str, bytes]]:
        """A device's punches, encoded before the clock starts, as the raw run's payload is."""
        made_ms = int(time.time() * 1000)
        out = []
        for seq in range(1, per + 1):
            msg_id = f"{dev}-{seq:08d}"
            env = {
                "v": 1,
                "id": msg_id,
                "dev": dev,
                "seq": seq,
                "ts": made_ms + seq,
                "kind": "punch",
                "body": {"card": f"C{(seq * len(devices) + n_dev) % PEOPLE + 1:04d}"},
            }
            out.append((msg_id, dumps(env)))
        return out

    encoded = [punches(dev, i) for i, dev in enumerate(devices)]

    def pump(c: mqtt.Client, w: _Window, dev: str, n_dev: int) -> None:
        where = f"tack/v1/{site}/{dev}/evt/punch"
        for msg_id, data in encoded[n_dev]:
            w.send(partial(_publish_keyed, c, where, data, msg_id))

    start = time.perf_counter()
    threads = [
        threading.Thread(target=pump, args=(c, w, d, i))
        for i, (c, w, d) in enumerate(zip(conns, windows, devices, strict=True))
    ]
    for t in threads:
        t.start()
    for w in windows:
        if not w.done.wait(300):
            raise RuntimeError("durable run: acks stopped arriving")
    seconds = time.perf_counter() - start
    for t in threads:
        t.join()
    for c in conns:
        c.disconnect()
        c.loop_stop()
    accepted = statuses.get(AckStatus.ACCEPTED, 0)
    return _summarise(
        name,
        per * len(devices),
        seconds,
        [x for w in windows for x in w.latencies_s],
    ), accepted


def run_echo(broker: Mosquitto, devices: list[str], n: int, window: int) -> tuple[RunResult, float]:
    """The durable run's traffic against a gateway that does nothing (bench/echo.py); returns
    the run and the echo process's CPU seconds over it."""
    site = "echo"
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", broker.host, str(broker.port), site],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "ready":
            raise SystemExit("the echo gateway did not start")
        cpu0 = _cpu_s(echo.pid)
        result, _ = run_durable(
            broker, site, devices, n, window, name="same traffic, a gateway that does nothing"
        )
        return result, _cpu_s(echo.pid) - cpu0
    finally:
        echo.terminate()
        echo.wait(10)


def _publish_keyed(c: mqtt.Client, topic: str, data: bytes, key: str) -> str:
    c.publish(topic, data, qos=1)
    return key


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / __import__("os").sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=int, default=400, help="messages in flight in all")
    args = parser.parse_args()
    if args.messages < args.clients or args.window < args.clients:
        parser.error("--messages and --window must be at least --clients")

    work = Path(tempfile.mkdtemp(prefix="tack-bench-"))
    site = "bench"
    devices = [f"bench-{i:02d}" for i in range(args.clients)]
    sample = dumps(
        {
            "v": 1,
            "id": "bench-00-00000001",
            "dev": "bench-00",
            "seq": 1,
            "ts": int(time.time() * 1000),
            "kind": "punch",
            "body": {"card": "C0001"},
        }
    )
    with Mosquitto() as broker:
        print(f"raw: {args.messages} messages, {args.clients} clients, window {args.window}")
        cpu0 = time.process_time()
        raw = run_raw(broker, args.messages, args.clients, args.window, sample)
        raw_client_cpu_s = time.process_time() - cpu0
        print(f"  {raw.msgs_per_s:,.0f} msg/s")
        print(f"echo: {args.messages} punches through a gateway that does nothing")
        cpu0 = time.process_time()
        echo, echo_cpu_s = run_echo(broker, devices, args.messages, args.window)
        echo_client_cpu_s = time.process_time() - cpu0
        print(f"  {echo.msgs_per_s:,.0f} msg/s")

        config = write_toml(
            work / "tack.toml",
            {
                "site": site,
                "data_dir": str(work / "data"),
                "mqtt": {"host": broker.host, "port": broker.port},
                "bridge": {"enabled": False},
                "attendance": {"repeat_window_s": 0},  # each person punches ~10 times a run
                "log": {"level": "WARNING"},
            },
        )
        settings = load_settings(config)
        people = [
            Person(f"u{i:04d}", f"Person {i}", card=f"C{i:04d}") for i in range(1, PEOPLE + 1)
        ]
        asyncio.run(seed(settings, devices, people))
        gw = GatewayProcess(config, work / "gateway.log")
        gw.start()
        wait_until_serving(broker, site)
        if os.environ.get("TACK_BENCH_PROFILE"):  # py-spy flame data of the gateway, if installed
            assert gw.proc is not None
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(gw.proc.pid),
                    "-o",
                    os.environ["TACK_BENCH_PROFILE"],
                    "-f",
                    "raw",
                    "-d",
                    "4",
                    "-r",
                    os.environ.get("TACK_BENCH_PROFILE_RATE", "100"),
                ]
            )
        try:
            print(f"durable: {args.messages} punches through the gateway")
            assert gw.proc is not None
            cpu0, gw_cpu0 = time.process_time(), _cpu_s(gw.proc.pid)
            durable, accepted = run_durable(broker, site, devices, args.messages, args.window)
            durable_client_cpu_s = time.process_time() - cpu0
            rss = _peak_rss_mib(gw.proc.pid)
            gw_cpu_s = _cpu_s(gw.proc.pid) - gw_cpu0
        finally:
            gw.stop()
        stored = query(settings.db_path, "SELECT count(*) FROM records")[0][0]
        print(
            f"  {durable.msgs_per_s:,.0f} punches/s; {stored} records stored; gateway CPU "
            f"{gw_cpu_s:.1f} s in {durable.seconds:.1f} s; bench CPU {time.process_time():.1f} s"
        )

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "settings": {
            "messages": args.messages,
            "clients": args.clients,
            "window": args.window,
            "synchronous": "full",
        },
        "raw": asdict(raw),
        "echo": asdict(echo),
        "durable": asdict(durable),
        "ratio": durable.msgs_per_s / raw.msgs_per_s,
        # Against the same traffic through a gateway that does nothing (bench/echo.py): what
        # the gateway's own work (decode, verify, classify, seal, commit) costs.
        "ratio_to_echo": durable.msgs_per_s / echo.msgs_per_s,
        "echo_cpu_ms_per_msg": echo_cpu_s * 1000 / echo.messages,
        "records_stored": stored,
        "accepted_acks": accepted,
        "every_record_committed_before_ack": stored == durable.messages,
        "gateway_peak_rss_mib": rss,
        "gateway_cpu_s": gw_cpu_s,  # over the durable run only, start-up left out
        "gateway_cpu_ms_per_punch": gw_cpu_s * 1000 / durable.messages,
        # The load generators are Python (paho) too and share the two cores with the broker
        # and the gateway: their own cost per message bounds what either run can reach.
        "raw_client_cpu_ms_per_msg": raw_client_cpu_s * 1000 / raw.messages,
        "echo_client_cpu_ms_per_msg": echo_client_cpu_s * 1000 / echo.messages,
        "durable_client_cpu_ms_per_msg": durable_client_cpu_s * 1000 / durable.messages,
        "bench_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    TABLE.write_text(
        "| run | msgs/s | ack p50 (ms) | ack p99 (ms) |\n|---|---|---|---|\n"
        + "".join(
            f"| {r.name} | {r.msgs_per_s:,.0f} | {r.latency_p50_ms:.1f} | "
            f"{r.latency_p99_ms:.1f} |\n"
            for r in (raw, echo, durable)
        )
        + f"\nratio durable/raw: **{results['ratio']:.2f}**; durable/echo "
        f"{results['ratio_to_echo']:.2f}; gateway peak RSS "
        f"{rss:.0f} MiB; {stored} of {durable.messages} punches stored\n"
        f"\nload generator CPU per message: raw {results['raw_client_cpu_ms_per_msg']:.3f} ms, "
        f"echo {results['echo_client_cpu_ms_per_msg']:.3f} ms, "
        f"durable {results['durable_client_cpu_ms_per_msg']:.3f} ms; echo gateway CPU "
        f"{results['echo_cpu_ms_per_msg']:.3f} ms per punch; gateway CPU "
        f"{gw_cpu_s * 1000 / durable.messages:.3f} ms per punch ({gw_cpu_s:.1f} s over the "
        "durable run)\n"
    )
    print(TABLE.read_text())
    return 0 if stored == durable.messages else 1


if __name__ == "__main__":
    sys.exit(main())
