"""The ``tack`` command. Each group lives in its own module; heavy imports happen inside
commands, so ``tack --help`` stays fast on a Raspberry Pi."""

from __future__ import annotations

import typer

from gateway.cli import devices_cmd, gateway_cmd, records_cmd

app = typer.Typer(
    name="tack",
    help="Tack: edge gateway, device tools and simulators for clock-in terminals and "
    "meeting-room panels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(devices_cmd.app, name="devices")
app.command("records")(records_cmd.records)
app.command("status")(records_cmd.status)


def main() -> None:
    app()
