"""What an operator sees while the bridge drains a queue: Prometheus metrics and the estimate
of the time left, and ``tack status`` reading it from another process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from cloud_bridge.runner import Bridge
from gateway.cli import app
from gateway.config import load_settings
from simulators.backend import BackendServer, Faults
from tests.cloud_bridge.helpers import bridge_toml, eventually, insert_records


def sample(registry: CollectorRegistry, line_start: str) -> float:
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starting {line_start!r}")


async def test_metrics_and_status_while_a_queue_drains(
    backend: BackendServer, tmp_path: Path
) -> None:
    config = bridge_toml(tmp_path, backend.base_url, rate_per_s=10.0)
    settings = load_settings(config)
    await insert_records(settings.db_path, ["ghost"] + ["u0001"] * 59)
    backend.state.set_faults(Faults(fail_status=2, fail_status_code=503))
    registry = CollectorRegistry()
    async with Bridge(settings, metrics_registry=registry) as bridge:

        async def some_synced() -> bool:
            return bridge.counters.uploaded >= 15

        await eventually(some_synced, "part of the queue uploaded")
        stats = await bridge.stats()
        await asyncio.sleep(1.1)  # the status row is saved once a second
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["status", "--config", str(config)], env={"COLUMNS": "200"}
        )

    assert 0 < stats.pending < 60
    assert stats.drain_per_s > 0
    assert stats.drain_eta_s is not None
    assert stats.drain_eta_s > 0
    assert sample(registry, 'tack_bridge_calls_total{api="upload",result="ok"}') >= 15
    assert sample(registry, 'tack_bridge_calls_total{api="upload",result="http_503"}') == 2
    assert sample(registry, 'tack_bridge_retries_total{cause="http_503"}') == 2
    assert sample(registry, 'tack_bridge_failures_total{cause="errcode_33012"}') == 1
    assert sample(registry, "tack_bridge_queue_depth") > 0
    assert result.exit_code == 0
    assert "records/s, about" in result.output
    assert "http_503 (2)" in result.output
