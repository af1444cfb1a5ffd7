"""``tack demo``: the whole flow on one machine with no set-up.

An embedded MQTT broker, the gateway with its bridge, the backend simulator over real HTTP and a
fleet of simulated terminals punching for a while; a live view while it runs, a summary at the
end, and exit code 0 only when every punch was stored once and uploaded once.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from gateway.cli.common import console, err_console

UPLOAD_WAIT_S = 60.0
# The simulated backend is on DingTalk's highest tier (60 upload calls/s per app, against the
# standard 20), so uploads keep up with the default 40 punches/s while the fleet runs.
DEMO_CALLS_PER_S = 60


@dataclass
class _View:
    sent: int = 0
    accepted: int = 0
    phase: str = "starting"
    elapsed_s: float = 0.0
    outbox: int = 0


def demo(
    devices: Annotated[int, typer.Option(min=1, max=500, help="Simulated terminals.")] = 20,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="Seconds of punching.")] = 30.0,
    rate: Annotated[
        float, typer.Option(min=0.1, max=5000, help="Punches per second across the fleet.")
    ] = 40.0,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its store (wiped at start).")
    ] = Path(".tack-demo"),
) -> None:
    """Run broker, gateway, backend simulator and a terminal fleet end to end."""
    from gateway.logs import configure_logging

    configure_logging("WARNING")
    ok = asyncio.run(_demo(devices, duration, rate, data_dir))
    raise typer.Exit(0 if ok else 1)


async def _demo(devices: int, duration_s: float, rate: float, data_dir: Path) -> bool:
    from gateway.config import load_settings
    from gateway.embedded_broker import EmbeddedBroker
    from gateway.service import Gateway
    from gateway.store import open_database
    from gateway.store.devices import Device, DeviceType, add_device
    from gateway.store.records import sync_stats
    from simulators.backend import BackendServer, BackendState, demo_roster
    from simulators.devices.fleet import FleetConfig, FleetSnapshot, fleet_device_ids, run_fleet

    shutil.rmtree(data_dir, ignore_errors=True)
    roster = demo_roster(max(50, devices))
    backend = BackendServer(BackendState(rate_limit_per_s=DEMO_CALLS_PER_S))
    backend.state.set_roster(roster)
    backend.start()
    try:
        async with EmbeddedBroker() as broker:
            settings = load_settings(
                None,
                site="demo",
                data_dir=str(data_dir / "gateway"),
                mqtt={"host": broker.host, "port": broker.port},
                bridge={
                    "base_url": backend.base_url,
                    "interval_s": 0.5,
                    "rate_per_s": DEMO_CALLS_PER_S,
                },
                # The demo punches every card many times a minute: without this, all but the
                # first punch of each person would be answered "already recorded".
                attendance={"repeat_window_s": 0},
            )
            fleet = FleetConfig(
                site=settings.site,
                state_dir=data_dir / "devices",
                host=broker.host,
                port=broker.port,
                devices=devices,
                rate_per_s=rate,
                duration_s=duration_s,
                cards=[p["card"] for p in roster],
                unknown_card_fraction=0.02,
                drain_timeout_s=60.0,
            )
            db = await open_database(settings.db_path)
            try:
                for device_id in fleet_device_ids(fleet):
                    await add_device(
                        db,
                        Device(device_id, settings.site, DeviceType.CLOCK_TERMINAL, "demo"),
                        replace=True,
                    )
            finally:
                await db.close()
            console.print(
                f"[bold]Tack demo[/bold]: broker {broker.host}:{broker.port} (embedded), backend "
                f"{backend.base_url}, store {settings.db_path}, {devices} terminals, "
                f"{rate:g} punches/s for {duration_s:g} s"
            )
            async with Gateway(settings) as gw:
                await gw.wait_connected(10)
                await _wait_for_roster(gw)
                view = _View()

                def on_tick(snap: FleetSnapshot) -> None:
                    view.sent, view.accepted = snap.sent, snap.accepted + snap.rejected
                    view.phase, view.elapsed_s = snap.phase, snap.elapsed_s
                    view.outbox = snap.outbox_depth

                with Live(console=console, refresh_per_second=4) as live:
                    fleet_task = asyncio.create_task(run_fleet(fleet, on_tick), name="demo.fleet")
                    while not fleet_task.done():
                        live.update(await _live_table(gw, backend, view))
                        await asyncio.wait({fleet_task}, timeout=0.25)
                    report = fleet_task.result()
                    view.phase = "uploading"
                    deadline = time.monotonic() + UPLOAD_WAIT_S
                    while time.monotonic() < deadline:
                        stats = await sync_stats(gw.aux)
                        live.update(await _live_table(gw, backend, view))
                        if stats.pending == 0:
                            break
                        await asyncio.sleep(0.25)
                    view.phase = "done"
                    live.update(await _live_table(gw, backend, view))
                stats = await sync_stats(gw.aux)
                snap = gw.snapshot()
            at_backend = backend.state.records()
    finally:
        backend.stop()

    stored_once = all(r["stored"] == 1 for r in at_backend)
    checks = {
        "every punch answered (outboxes empty)": report.undelivered == 0,
        "every accepted punch stored once": snap.committed
        == report.accepted + report.rejected_total,
        "every stored punch uploaded": stats.pending == 0
        and stats.by_state.get("synced", 0) == len(at_backend),
        "each record once at the backend": stored_once,
    }
    table = Table(title="Tack demo: summary", show_header=False)
    for key, value in [
        ("punches sent by terminals", report.sent),
        ("accepted", report.accepted),
        ("refused (unknown cards)", report.rejected_total),
        ("duplicates dropped at the gateway", snap.duplicates),
        ("records committed", snap.committed),
        ("group commits", snap.commits),
        ("uploaded to the backend", len(at_backend)),
        ("still pending upload", stats.pending),
        (
            "ack latency at the gateway p50 / p99",
            f"{snap.latency.p50_ms:.1f} / {snap.latency.p99_ms:.1f} ms",
        ),
        (
            "ack latency at the terminals p50 / p99",
            f"{report.ack_latency_p50_ms or 0:.1f} / {report.ack_latency_p99_ms or 0:.1f} ms",
        ),
    ]:
        table.add_row(key, str(value))
    for check, passed in checks.items():
        table.add_row(check, "[green]yes[/green]" if passed else "[red]NO[/red]")
    console.print(table)
    if not all(checks.values()):
        err_console.print("[red]demo failed:[/red] see the checks above")
    return all(checks.values())


async def _wait_for_roster(gw: Any, timeout_s: float = 20.0) -> None:
    """Terminals punch cards from the backend's roster: wait until the bridge pulled it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await gw.verifier.reload_if_changed()
        if gw.verifier.people:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the bridge did not pull the roster within {timeout_s}s")


async def _live_table(gw: Any, backend: Any, view: _View) -> Table:
    from gateway.store.records import sync_stats

    snap = gw.snapshot()
    stats = await sync_stats(gw.aux)
    table = Table(title=f"Tack demo: {view.phase} ({view.elapsed_s:.0f} s)", show_header=False)
    table.add_row("punches sent", str(view.sent))
    table.add_row("answered", str(view.accepted))
    table.add_row("waiting in terminal outboxes", str(view.outbox))
    table.add_row("committed", str(snap.committed))
    table.add_row("duplicates dropped", str(snap.duplicates))
    table.add_row("uploaded", str(len(backend.state.records())))
    table.add_row("bridge lag", f"{stats.lag_s():.1f} s ({stats.pending} pending)")
    table.add_row(
        "ack latency p50 / p99", f"{snap.latency.p50_ms:.1f} / {snap.latency.p99_ms:.1f} ms"
    )
    return table
