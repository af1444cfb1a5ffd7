"""A fleet of simulated terminals punching at a steady total rate, then draining.

The fleet does not register its devices at the gateway: that is the facilities side's job
(``gateway.store.devices.add_device``). Call :func:`fleet_device_ids` first and register them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from devices.protocol import TackError
from simulators.devices.terminal import Terminal, TerminalConfig, TerminalStats

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CARDS: tuple[str, ...] = tuple(f"C{n:04d}" for n in range(1, 21))
"""The backend simulator's demo roster holds cards C0001..C0020."""

TICK_S = 0.25
# Punches run on a small pool: each is one SQLite commit, and a pool per device would mean
# hundreds of idle threads for a large fleet on a 2-core machine.
_MAX_PUNCH_THREADS = 8


class FleetError(TackError):
    """The fleet could not run (e.g. devices never reached the broker)."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    site: str
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    devices: int = 3
    rate_per_s: float = 5.0  # total across the fleet
    duration_s: float = 10.0
    cards: Sequence[str] = DEFAULT_CARDS
    unknown_card_fraction: float = 0.0
    device_prefix: str = "term-"
    ack_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    drain_timeout_s: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError(f"devices must be at least 1, got {self.devices}")
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {self.rate_per_s}")
        if self.duration_s < 0:
            raise ValueError(f"duration_s must not be negative, got {self.duration_s}")
        if not 0.0 <= self.unknown_card_fraction <= 1.0:
            raise ValueError(
                f"unknown_card_fraction must be within 0..1, got {self.unknown_card_fraction}"
            )
        if not self.cards and self.unknown_card_fraction < 1.0:
            raise ValueError("cards is empty: give at least one valid card")


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """A live view for progress displays, taken about four times a second."""

    phase: str  # "connecting", "punching", "draining", "done"
    elapsed_s: float
    devices: int
    connected: int
    target: int  # punches due so far at the configured rate
    sent: int
    accepted: int
    duplicate: int
    rejected: int
    deferred: int
    resent: int
    outbox_depth: int


@dataclass(frozen=True, slots=True)
class FleetReport:
    site: str
    device_ids: tuple[str, ...]
    punch_s: float
    drain_s: float
    drained: bool
    sent: int
    reloaded: int
    accepted: int
    duplicate: int
    rejected: Mapping[str, int]
    deferred: Mapping[str, int]
    resent: int
    stray_acks: int
    undelivered: int
    ack_latency_p50_ms: float | None
    ack_latency_p99_ms: float | None
    ack_latency_max_ms: float | None
    seq_ranges: Mapping[str, tuple[int, int] | None]
    per_device: tuple[TerminalStats, ...] = field(default=(), repr=False)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def achieved_rate_per_s(self) -> float:
        return self.sent / self.punch_s if self.punch_s > 0 else 0.0


def fleet_device_ids(cfg: FleetConfig) -> list[str]:
    """``term-001``, ``term-002``, ...: register these at the gateway before running."""
    width = max(3, len(str(cfg.devices)))
    return [f"{cfg.device_prefix}{n:0{width}d}" for n in range(1, cfg.devices + 1)]


def _schedule(cfg: FleetConfig, index: int) -> tuple[float, float, int]:
    """Device ``index``'s first punch offset, interval and number of punches, in seconds.

    Devices are staggered across one interval, so the fleet punches evenly, not in bursts.
    """
    interval_s = cfg.devices / cfg.rate_per_s
    offset_s = index * interval_s / cfg.devices
    count = math.ceil((cfg.duration_s - offset_s) / interval_s) if cfg.duration_s > offset_s else 0
    return offset_s, interval_s, count


def planned_punches(cfg: FleetConfig) -> int:
    """How many punches a run makes: about ``rate_per_s * duration_s``."""
    return sum(_schedule(cfg, i)[2] for i in range(cfg.devices))


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _snapshot(
    phase: str, started: float, cfg: FleetConfig, stats: list[TerminalStats], target: int
) -> FleetSnapshot:
    return FleetSnapshot(
        phase=phase,
        elapsed_s=time.monotonic() - started,
        devices=len(stats),
        connected=sum(s.connected for s in stats),
        target=target,
        sent=sum(s.sent for s in stats),
        accepted=sum(s.accepted for s in stats),
        duplicate=sum(s.duplicate for s in stats),
        rejected=sum(s.rejected_total for s in stats),
        deferred=sum(sum(s.deferred.values()) for s in stats),
        resent=sum(s.resent for s in stats),
        outbox_depth=sum(s.outbox_depth for s in stats),
    )


class _Run:
    """State of one ``run_fleet`` call, shared by its tasks."""

    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.phase = "connecting"
        self.started = time.monotonic()
        self.punch_started: float | None = None
        self.punch_ended: float | None = None
        self.rng = random.Random(cfg.seed)

    def target(self) -> int:
        """Punches due so far; once punching ended, exactly as many as were scheduled."""
        if self.punch_started is None:
            return 0
        if self.punch_ended is not None:
            return planned_punches(self.cfg)
        elapsed = min(time.monotonic() - self.punch_started, self.cfg.duration_s)
        return min(int(elapsed * self.cfg.rate_per_s), planned_punches(self.cfg))

    def card(self, rng: random.Random) -> str:
        cfg = self.cfg
        if cfg.unknown_card_fraction and rng.random() < cfg.unknown_card_fraction:
            return f"X{rng.randrange(16**7):07X}"  # never in a roster of C-numbers
        return rng.choice(list(cfg.cards))


async def _tick(
    run: _Run, terminals: list[Terminal], on_tick: Callable[[FleetSnapshot], None]
) -> None:
    while True:
        stats = [t.stats() for t in terminals]
        on_tick(_snapshot(run.phase, run.started, run.cfg, stats, run.target()))
        await asyncio.sleep(TICK_S)


async def _punch_device(
    run: _Run,
    terminal: Terminal,
    index: int,
    pool: concurrent.futures.Executor,
    start: float,
) -> None:
    """Punch at this device's share of the rate, on a fixed schedule that catches up if late."""
    offset_s, interval_s, count = _schedule(run.cfg, index)
    rng = random.Random(run.rng.random())
    loop = asyncio.get_running_loop()
    for k in range(count):
        delay = start + offset_s + k * interval_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await loop.run_in_executor(pool, partial(terminal.punch, run.card(rng)))


async def _watch(ticker: asyncio.Task[None] | None, work: Awaitable[T]) -> T:
    """Await ``work``, but end it early if the ticker fails (``on_tick`` raised)."""
    if ticker is None:
        return await work
    work_task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({work_task, ticker}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work_task.cancel()
        raise
    if work_task.done():
        return work_task.result()
    # The ticker loops for ever; when it is done first, on_tick raised.
    work_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work_task
    ticker.result()
    raise AssertionError("the fleet ticker ended without an error")


async def _stop_all(terminals: list[Terminal], pool: concurrent.futures.Executor) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, t.stop) for t in terminals))


async def run_fleet(
    cfg: FleetConfig, on_tick: Callable[[FleetSnapshot], None] | None = None
) -> FleetReport:
    """Start the terminals, punch for ``duration_s`` at ``rate_per_s`` (total), wait up to
    ``drain_timeout_s`` for every outbox to empty, stop them and report.

    Raises :class:`FleetError` when not every device reached the broker within
    ``connect_timeout_s``. An exception raised by ``on_tick`` ends the run and propagates.
    """
    ids = fleet_device_ids(cfg)
    run = _Run(cfg)
    terminals = [
        Terminal(
            TerminalConfig(
                site=cfg.site,
                device_id=device_id,
                state_dir=Path(cfg.state_dir) / device_id,
                host=cfg.host,
                port=cfg.port,
                ack_timeout_s=cfg.ack_timeout_s,
            )
        )
        for device_id in ids
    ]
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(cfg.devices, _MAX_PUNCH_THREADS), thread_name_prefix="tack-fleet"
    )
    ticker: asyncio.Task[None] | None = None
    started: list[Terminal] = []
    try:
        for terminal in terminals:
            await loop.run_in_executor(pool, terminal.start)
            started.append(terminal)
        if on_tick is not None:
            ticker = asyncio.create_task(
                _tick(run, terminals, on_tick), name=f"tack-fleet[{cfg.site}].tick"
            )
        connected = await _watch(
            ticker,
            asyncio.gather(*(t.wait_connected(cfg.connect_timeout_s) for t in terminals)),
        )
        missing = [t.device_id for t, ok in zip(terminals, connected, strict=True) if not ok]
        if missing:
            raise FleetError(
                f"{len(missing)} of {cfg.devices} devices did not reach the broker at "
                f"{cfg.host}:{cfg.port} within {cfg.connect_timeout_s}s "
                f"(first: {missing[0]}); is the broker running?"
            )
        run.phase = "punching"
        run.punch_started = punch_started = time.monotonic()
        await _watch(
            ticker,
            asyncio.gather(
                *(_punch_device(run, t, i, pool, punch_started) for i, t in enumerate(terminals))
            ),
        )
        run.punch_ended = punch_ended = time.monotonic()
        run.phase = "draining"
        drained = all(
            await _watch(
                ticker,
                asyncio.gather(*(t.wait_drained(cfg.drain_timeout_s) for t in terminals)),
            )
        )
        drain_ended = time.monotonic()
        run.phase = "done"
        stats = [t.stats() for t in terminals]
        latencies = sorted(x for t in terminals for x in t.ack_latencies_ms())
        if on_tick is not None:
            on_tick(_snapshot(run.phase, run.started, cfg, stats, run.target()))
    finally:
        if ticker is not None:
            ticker.cancel()
            try:
                await ticker
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
            except Exception:
                # Its error was raised by _watch already; this is the same one, seen again.
                log.debug("fleet ticker had failed", exc_info=True)
        await _stop_all(started, pool)
        pool.shutdown(wait=False)

    rejected: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    for s in stats:
        rejected.update(s.rejected)
        deferred.update(s.deferred)
    return FleetReport(
        site=cfg.site,
        device_ids=tuple(ids),
        punch_s=punch_ended - punch_started,
        drain_s=drain_ended - punch_ended,
        drained=drained,
        sent=sum(s.sent for s in stats),
        reloaded=sum(s.reloaded for s in stats),
        accepted=sum(s.accepted for s in stats),
        duplicate=sum(s.duplicate for s in stats),
        rejected=dict(rejected),
        deferred=dict(deferred),
        resent=sum(s.resent for s in stats),
        stray_acks=sum(s.stray_acks for s in stats),
        undelivered=sum(s.outbox_depth for s in stats),
        ack_latency_p50_ms=percentile(latencies, 0.50),
        ack_latency_p99_ms=percentile(latencies, 0.99),
        ack_latency_max_ms=latencies[-1] if latencies else None,
        seq_ranges={
            s.device_id: (s.first_seq, s.last_seq)
            if s.first_seq is not None and s.last_seq is not None
            else None
            for s in stats
        },
        per_device=tuple(stats),
    )
