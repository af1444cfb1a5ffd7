"""``tack gateway run``: the long-running service."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from gateway.cli.common import ConfigOption, run, settings_from

app = typer.Typer(help="Run the edge gateway.", no_args_is_help=True)


@app.command("run")
def run_gateway(
    config: ConfigOption = None,
    no_bridge: Annotated[
        bool, typer.Option("--no-bridge", help="Do not run the cloud bridge in this process.")
    ] = False,
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C."""
    from gateway.logs import configure_logging

    settings = settings_from(config)
    configure_logging(settings.log.level, settings.log.format)

    async def main() -> None:
        from gateway.service import Gateway

        async with Gateway(settings, run_bridge=False if no_bridge else None) as gw:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, gw.stop)
            await gw.wait_closed()

    run(main())
