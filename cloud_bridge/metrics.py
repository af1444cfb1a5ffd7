"""The bridge's upload metrics (Prometheus) and its estimate of the time left to drain.

The gateway hands the bridge its own registry, so these sit beside the gateway's metrics; a
bridge run on its own gets a registry of its own. Label values are short bounded codes (an
errcode, an HTTP status, "timeout"), never free text.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

DRAIN_WINDOW_S = 60.0  # the drain rate is measured over the last minute of uploads


class DrainMeter:
    """Records synced per second over the last :data:`DRAIN_WINDOW_S`, and what that means
    for the queue: at this pace, how long until it is empty."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started_s = clock()
        self._events: collections.deque[tuple[float, int]] = collections.deque()

    def synced(self, n: int) -> None:
        if n:
            self._events.append((self._clock(), n))

    def rate_per_s(self) -> float:
        now = self._clock()
        while self._events and self._events[0][0] < now - DRAIN_WINDOW_S:
            self._events.popleft()
        if not self._events:
            return 0.0
        span_s = min(DRAIN_WINDOW_S, now - self._started_s)
        return sum(n for _, n in self._events) / max(span_s, 1.0)

    def eta_s(self, pending: int) -> float | None:
        """Seconds to drain ``pending`` at the current rate; None when nothing is moving."""
        if pending == 0:
            return 0.0
        rate = self.rate_per_s()
        return pending / rate if rate > 0 else None


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue = Gauge("tack_bridge_queue_depth", "Records waiting for upload", registry=r)
        self.lag = Gauge(
            "tack_bridge_lag_seconds",
            "Age of the oldest record not yet at the backend",
            registry=r,
        )
        self.drain_rate = Gauge(
            "tack_bridge_drain_records_per_second",
            "Records synced per second over the last minute",
            registry=r,
        )
        self.drain_eta = Gauge(
            "tack_bridge_drain_eta_seconds",
            "Time left to empty the queue at the current rate (-1: not moving)",
            registry=r,
        )
        self.rate_limit = Gauge(
            "tack_bridge_upload_calls_per_second",
            "Upload calls per second the bridge currently paces itself to",
            registry=r,
        )
        self.calls = Counter(
            "tack_bridge_calls",
            "Backend API calls, by API and result",
            ["api", "result"],
            registry=r,
        )
        self.records = Counter(
            "tack_bridge_records", "Upload results per record, by outcome", ["outcome"], registry=r
        )
        self.retries = Counter(
            "tack_bridge_retries",
            "Record attempts that must be repeated, by cause",
            ["cause"],
            registry=r,
        )
        self.failures = Counter(
            "tack_bridge_failures",
            "Records refused for good (dead-lettered), by cause",
            ["cause"],
            registry=r,
        )

    def observe_call(self, api: str, result: str) -> None:
        self.calls.labels(api, result).inc()
