"""The ``tack`` command. Each group lives in its own module; heavy imports happen inside
commands, so ``tack --help`` stays fast on a Raspberry Pi."""

from __future__ import annotations

import typer

from gateway.cli import (
    accounts_cmd,
    admin_cmd,
    audit_cmd,
    backup_cmd,
    broker_cmd,
    demo,
    devices_cmd,
    faces_cmd,
    gateway_cmd,
    geofences_cmd,
    keys_cmd,
    notices_cmd,
    records_cmd,
    report_cmd,
    retention_cmd,
)

app = typer.Typer(
    name="tack",
    help="Tack: edge gateway, device tools and simulators for clock-in terminals and "
    "meeting-room panels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(devices_cmd.app, name="devices")
app.add_typer(report_cmd.app, name="report")
app.add_typer(geofences_cmd.app, name="geofences")
app.command("records")(records_cmd.records)
app.command("status")(records_cmd.status)
app.command("demo")(demo.demo)
app.add_typer(faces_cmd.app, name="faces")
app.add_typer(notices_cmd.app, name="notices")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(accounts_cmd.app, name="accounts")
app.add_typer(admin_cmd.app, name="admin")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(retention_cmd.app, name="retention")
app.add_typer(broker_cmd.app, name="broker")


def _mount_optional_groups() -> None:
    # Sub-apps of the other packages; imported here so each package owns its commands.
    from cloud_bridge.cli import app as bridge_app
    from simulators.backend.cli import app as backend_app
    from simulators.cli import app as sim_app

    sim_app.add_typer(backend_app, name="backend", help="Serve the backend simulator.")
    app.add_typer(bridge_app, name="bridge")
    app.add_typer(sim_app, name="sim")


_mount_optional_groups()


def main() -> None:
    app()
