"""``tack bridge run``: the bridge as its own process beside the gateway.

SIGTERM or Ctrl-C stops it cleanly (a round in flight may finish and mark its records); a
second signal cancels at once, which loses nothing either, because unmarked records are still
pending and their replay is harmless.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from cloud_bridge.runner import Bridge
from gateway.config import ConfigError, TackSettings, load_settings
from gateway.logs import configure_logging

EXIT_CONFIG = 2

app = typer.Typer(help="Sync the gateway's store with the collaboration backend.")


@app.callback()
def _group() -> None:
    """Keep ``run`` a named subcommand even while it is the only one."""


async def run_bridge(settings: TackSettings) -> None:
    """Run a :class:`Bridge` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # second signal: do not wait for the round in flight
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        await Bridge(settings).run(stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
    ] = None,
) -> None:
    """Upload pending records and pull the roster until stopped."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    configure_logging(settings.log.level, settings.log.format)
    if not settings.bridge.enabled:
        typer.echo("bridge.enabled is false in this configuration; nothing to run", err=True)
        return
    try:
        asyncio.run(run_bridge(settings))
    except asyncio.CancelledError as exc:
        typer.echo("bridge cancelled by a second signal", err=True)
        raise typer.Exit(130) from exc


if __name__ == "__main__":
    app()
