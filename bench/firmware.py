"""The real firmware under load: one MicroPython terminal, 1,000 punches in a row, 64 KiB heap.

The terminal runs ``firmware/main.py`` compiled with mpy-cross under ``micropython -X
heapsize=64K``, against Mosquitto and a gateway process (ack after commit, as in production).
Punches are typed in as fast as the terminal takes them; the run ends when the last ack has
removed the last punch from the outbox. Recorded: punches per second end to end, the heap in use
after boot and its peak during the run (``gc.mem_alloc``, sampled by the firmware itself), and
the host-measured ack latency.

Writes ``bench/firmware.json`` and ``bench/firmware.md``. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

from gateway.config import load_settings
from gateway.store.roster import Person
from simulators.devices.firmware import FirmwareConfig, FirmwareDevice, ensure_font
from simulators.devices.fleet import percentile
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import seed
from tests.fixtures.processes import GatewayProcess, write_toml

RESULTS = Path(__file__).parent / "firmware.json"
TABLE = Path(__file__).parent / "firmware.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--punches", type=int, default=1000)
    parser.add_argument("--heap", default="64K", help="micropython -X heapsize")
    parser.add_argument("--window", type=int, default=16, help="firmware send_window")
    args = parser.parse_args()
    if args.punches < 1:
        parser.error("--punches must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="tack-bench-fw-"))
    site = "benchfw"
    with Mosquitto() as broker:
        config = write_toml(
            work / "tack.toml",
            {
                "site": site,
                "data_dir": str(work / "data"),
                "mqtt": {"host": broker.host, "port": broker.port},
                "bridge": {"enabled": False},
                "attendance": {"repeat_window_s": 0},  # the same cards punch again and again
            },
        )
        settings = load_settings(config)
        asyncio.run(seed(settings, ["fw-001"], [Person("u1", "Li Wei", card="C0001")]))
        gw = GatewayProcess(config, work / "gateway.log")
        gw.start()
        gw.wait_up()
        dev = FirmwareDevice(
            FirmwareConfig(
                site=site,
                device_id="fw-001",
                data_dir=work / "fw-001",
                port=broker.port,
                heap=args.heap,
                font=ensure_font(),
                extra={"send_window": args.window},
            )
        )
        try:
            dev.start()
            dev.wait_event("connected", 20)
            print(f"{args.punches} punches into one MicroPython terminal, heap {args.heap}")
            started = time.monotonic()
            for _ in range(args.punches):
                dev.punch("C0001")
            dev.wait_for(
                lambda evs: (
                    sum(1 for e in evs if e.get("e") == "ack" and e["action"] == "remove")
                    >= args.punches
                ),
                timeout_s=600,
                what="every ack",
            )
            seconds = time.monotonic() - started
            dev.stop()
        finally:
            dev.kill()
            gw.stop()
    queued = {e["id"]: e["t"] for e in dev.of("queued")}
    latencies = sorted(
        (e["t"] - queued[e["id"]]) * 1000 for e in dev.of("ack") if e["id"] in queued
    )
    stopped = dev.of("stopped")
    mem = dev.of("mem")
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}",
        "punches": args.punches,
        "heap": args.heap,
        "send_window": args.window,
        "seconds": round(seconds, 2),
        "punches_per_s": round(args.punches / seconds, 1),
        "ack_latency_p50_ms": round(percentile(latencies, 0.5) or 0.0, 1),
        "ack_latency_p99_ms": round(percentile(latencies, 0.99) or 0.0, 1),
        "heap_boot_bytes": mem[0].get("heap_boot") if mem else None,
        "heap_peak_bytes": stopped[-1].get("heap_peak") if stopped else None,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    TABLE.write_text(
        "| punches | heap | punches/s | ack p50 | ack p99 | heap after boot | heap peak |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {results['punches']} | {results['heap']} | {results['punches_per_s']} "
        f"| {results['ack_latency_p50_ms']} ms | {results['ack_latency_p99_ms']} ms "
        f"| {results['heap_boot_bytes']} B | {results['heap_peak_bytes']} B |\n"
    )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
