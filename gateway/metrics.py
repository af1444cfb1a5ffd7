"""The gateway's counters, as Prometheus metrics in a registry of its own.

A registry per gateway (not the process-global one) lets tests and the demo run several
gateways in one process. Ack latency is also kept as a small ring of recent samples, so the
demo can show p50/p99 without scraping.
"""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50_ms: float
    p99_ms: float


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "tack_messages", "Device messages received, by topic kind", ["kind"], registry=r
        )
        self.acks = Counter(
            "tack_acks",
            "Acks sent to devices, by status and reason",
            ["status", "reason"],
            registry=r,
        )
        self.invalid = Counter(
            "tack_invalid_messages",
            "Messages refused before storage, by reason code",
            ["reason"],
            registry=r,
        )
        self.committed = Counter("tack_records_committed", "Records committed", registry=r)
        self.duplicates = Counter(
            "tack_duplicates", "Redelivered messages answered 'duplicate'", registry=r
        )
        self.commits = Counter("tack_commits", "Group commits", registry=r)
        self.frames = Counter("tack_frames_stored", "Camera frames stored", registry=r)
        self.time_syncs = Counter(
            "tack_time_syncs", "cmd/time messages sent to devices on connect", registry=r
        )
        self.batch_size = Histogram(
            "tack_commit_batch_size",
            "Records per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.ack_latency = Histogram(
            "tack_ack_latency_seconds",
            "From receiving a message to publishing its ack (commit included)",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.devices_online = Gauge("tack_devices_online", "Devices online", registry=r)
        self.pending = Gauge("tack_commit_queue", "Messages waiting for their commit", registry=r)
        self._recent_latency_s: collections.deque[float] = collections.deque(maxlen=20000)
        # Labelled children looked up once: ``labels()`` takes a lock and builds a key on every
        # call, which the ingest path would pay twice per message.
        self._children: dict[tuple[str, ...], Any] = {}

    def count_message(self, kind: str) -> None:
        self._child(self.messages, "m", kind).inc()

    def count_ack(self, status: str, reason: str) -> None:
        self._child(self.acks, "a", status, reason).inc()

    def _child(self, metric: Counter, tag: str, *labels: str) -> Any:
        key = (tag, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_ack_latency(self, seconds: float) -> None:
        self.ack_latency.observe(seconds)
        self._recent_latency_s.append(seconds)

    def latency_summary(self) -> LatencySummary:
        samples = list(self._recent_latency_s)
        if len(samples) < 2:
            only = samples[0] * 1000 if samples else 0.0
            return LatencySummary(len(samples), only, only)
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return LatencySummary(len(samples), cuts[49] * 1000, cuts[98] * 1000)

    def total(self, name: str, **labels: str) -> float:
        """Current value of a metric sample, e.g. ``total("tack_records_committed_total")``."""
        return self.registry.get_sample_value(name, labels or None) or 0.0
