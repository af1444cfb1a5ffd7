"""A fleet of real MicroPython terminals: ``tack sim fleet --firmware N``.

Same plan and same report as the Python fleet (:mod:`simulators.devices.fleet`): punches spread
evenly over the devices at a total rate, then a drain until every outbox is empty. Each device
is a ``micropython`` process running the firmware unchanged, so this is the test of the real
firmware at fleet scale; ack latency is measured on the host, from the line that says a punch
was queued to the line that says its ack arrived.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from simulators.devices.firmware import FirmwareConfig, FirmwareDevice, FirmwareError
from simulators.devices.fleet import (
    FleetConfig,
    FleetError,
    FleetReport,
    FleetSnapshot,
    fleet_device_ids,
    percentile,
    planned_punches,
)

_TICK_S = 0.25


def _settled(dev: FirmwareDevice) -> dict[str, dict[str, object]]:
    """Final acks by message id (the first that removed it from the outbox)."""
    done: dict[str, dict[str, object]] = {}
    for e in dev.of("ack"):
        if e.get("action") == "remove" and e["id"] not in done:
            done[e["id"]] = e
    return done


def outbox_depth(dev: FirmwareDevice) -> int:
    """The outbox size the device last reported (on connect, on a new punch, on an ack)."""
    with_depth = [e for e in dev.events if e.get("e") in ("connected", "queued", "ack")]
    return int(with_depth[-1]["outbox"]) if with_depth else 0


def _snapshot(phase: str, started: float, devs: list[FirmwareDevice], target: int) -> FleetSnapshot:
    queued = sum(len(d.of("queued")) for d in devs)
    finals = [e for d in devs for e in _settled(d).values()]
    deferred = sum(1 for d in devs for e in d.of("ack") if e.get("action") == "keep")
    return FleetSnapshot(
        phase=phase,
        elapsed_s=time.monotonic() - started,
        devices=len(devs),
        connected=sum(1 for d in devs if d.of("connected") and d.running),
        target=target,
        sent=queued,
        accepted=sum(1 for e in finals if e["status"] == "accepted"),
        duplicate=sum(1 for e in finals if e["status"] == "duplicate"),
        rejected=sum(1 for e in finals if e["status"] == "rejected"),
        deferred=deferred,
        resent=sum(1 for d in devs for e in d.of("sent") if e.get("resend")),
        outbox_depth=sum(outbox_depth(d) for d in devs),
    )


def run_firmware_fleet(
    cfg: FleetConfig,
    *,
    font: Path,
    heap: str | None = None,
    on_tick: Callable[[FleetSnapshot], None] | None = None,
) -> FleetReport:
    """Start ``cfg.devices`` firmware processes, punch, drain, stop them and report.

    Raises :class:`FleetError` when a device does not reach the broker in time.
    """
    import random

    rng = random.Random(cfg.seed)
    ids = fleet_device_ids(cfg)
    started = time.monotonic()
    devs = [
        FirmwareDevice(
            FirmwareConfig(
                site=cfg.site,
                device_id=device_id,
                data_dir=Path(cfg.state_dir) / device_id,
                host=cfg.host,
                port=cfg.port,
                heap=heap,
                font=font,
                extra={"ack_timeout_s": max(1, round(cfg.ack_timeout_s))},
            )
        )
        for device_id in ids
    ]
    last_tick = 0.0

    def tick(phase: str, target: int) -> None:
        nonlocal last_tick
        if on_tick is not None and time.monotonic() - last_tick >= _TICK_S:
            last_tick = time.monotonic()
            on_tick(_snapshot(phase, started, devs, target))

    try:
        for dev in devs:
            dev.start()
        deadline = time.monotonic() + cfg.connect_timeout_s
        for dev in devs:
            try:
                dev.wait_event("connected", max(0.1, deadline - time.monotonic()))
            except FirmwareError as exc:
                raise FleetError(
                    f"{dev.device_id} did not reach the broker at {cfg.host}:{cfg.port} within "
                    f"{cfg.connect_timeout_s}s; is the broker running?\n{dev.tail(5)}"
                ) from exc
        reloaded = sum(d.of("connected")[0].get("outbox", 0) for d in devs)
        total = planned_punches(cfg)
        interval_s = 1.0 / cfg.rate_per_s
        punch_started = time.monotonic()
        for n in range(total):
            due = punch_started + n * interval_s
            while (now := time.monotonic()) < due:
                tick("punching", int((now - punch_started) * cfg.rate_per_s))
                time.sleep(min(due - now, _TICK_S))
            card = (
                f"X{rng.randrange(16**7):07X}"
                if cfg.unknown_card_fraction and rng.random() < cfg.unknown_card_fraction
                else rng.choice(list(cfg.cards))
            )
            devs[n % len(devs)].punch(card)
        punch_s = time.monotonic() - punch_started
        drain_started = time.monotonic()
        drain_deadline = drain_started + cfg.drain_timeout_s
        while time.monotonic() < drain_deadline:
            tick("draining", total)
            if sum(len(d.of("queued")) for d in devs) >= total and not any(
                outbox_depth(d) for d in devs
            ):
                break
            time.sleep(0.05)
        drain_s = time.monotonic() - drain_started
    finally:
        for dev in devs:
            dev.stop()
    snap = _snapshot("done", started, devs, total)
    if on_tick is not None:
        on_tick(snap)
    latencies: list[float] = []
    rejected: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    stray = 0
    for dev in devs:
        queued_at = {e["id"]: e["t"] for e in dev.of("queued")}
        for msg_id, ack in _settled(dev).items():
            if msg_id in queued_at:
                latencies.append((float(str(ack["t"])) - queued_at[msg_id]) * 1000.0)
            if ack["status"] == "rejected":
                rejected[str(ack["reason"])] += 1
        for e in dev.of("ack"):
            if e.get("action") == "keep":
                deferred[str(e["reason"])] += 1
            elif e.get("action") == "unmatched":
                stray += 1
    latencies.sort()
    seq_ranges: dict[str, tuple[int, int] | None] = {}
    for dev in devs:
        seqs = [int(e["seq"]) for e in dev.of("queued")]
        seq_ranges[dev.device_id] = (min(seqs), max(seqs)) if seqs else None
    return FleetReport(
        site=cfg.site,
        device_ids=tuple(ids),
        punch_s=punch_s,
        drain_s=drain_s,
        drained=snap.outbox_depth == 0,
        sent=snap.sent,
        reloaded=reloaded,
        accepted=snap.accepted,
        duplicate=snap.duplicate,
        rejected=dict(rejected),
        deferred=dict(deferred),
        resent=snap.resent,
        stray_acks=stray,
        undelivered=snap.outbox_depth,
        ack_latency_p50_ms=percentile(latencies, 0.5),
        ack_latency_p99_ms=percentile(latencies, 0.99),
        ack_latency_max_ms=latencies[-1] if latencies else None,
        seq_ranges=seq_ranges,
    )
