"""``tack devices``: register, list and revoke devices."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from devices.protocol.limits import MAX_DEVICE_ID_CHARS
from devices.protocol.topics import valid_id
from gateway.cli.common import ConfigOption, console, err_console, run, settings_from
from gateway.store.devices import DeviceType

app = typer.Typer(help="Register, list and revoke devices.", no_args_is_help=True)


@app.command("add")
def add(
    device_ids: Annotated[list[str], typer.Argument(help="One or more device ids.")],
    device_type: Annotated[
        DeviceType, typer.Option("--type", help="What kind of device it is.")
    ] = DeviceType.CLOCK_TERMINAL,
    name: Annotated[str, typer.Option(help="A name people recognise, e.g. 'Lobby door'.")] = "",
    config: ConfigOption = None,
) -> None:
    """Register devices so the gateway accepts their messages."""
    bad = [d for d in device_ids if not valid_id(d, MAX_DEVICE_ID_CHARS)]
    if bad:
        err_console.print(
            f"[red]error:[/red] invalid device id(s) {', '.join(map(repr, bad))}: use 1-"
            f"{MAX_DEVICE_ID_CHARS} of A-Z a-z 0-9 _ - starting with a letter or digit"
        )
        raise typer.Exit(2)
    settings = settings_from(config)

    async def main() -> None:
        from gateway.store import open_database
        from gateway.store.devices import Device, add_device

        db = await open_database(settings.db_path)
        try:
            for device_id in device_ids:
                await add_device(db, Device(device_id, settings.site, device_type, name))
                console.print(f"added {device_id} ({device_type}) at site {settings.site}")
        finally:
            await db.close()

    run(main())


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """List registered devices with their presence."""
    settings = settings_from(config)

    async def main() -> None:
        from gateway.store import open_database
        from gateway.store.devices import list_devices, list_presence

        db = await open_database(settings.db_path)
        try:
            devices = await list_devices(db)
            presence = {p.device_id: p for p in await list_presence(db)}
        finally:
            await db.close()
        table = Table("device", "type", "name", "state", "boot", "firmware")
        for d in devices:
            p = presence.get(d.device_id)
            state = "revoked" if d.revoked else ("online" if p and p.online else "offline")
            table.add_row(
                d.device_id,
                str(d.device_type),
                d.name,
                state,
                str(p.boot) if p else "-",
                (p.firmware or "-") if p else "-",
            )
        console.print(table)

    run(main())


@app.command("revoke")
def revoke(
    device_id: Annotated[str, typer.Argument(help="The device to revoke.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a device: its messages are refused with 'device_revoked' from now on."""
    settings = settings_from(config)

    async def main() -> bool:
        from gateway.store import open_database
        from gateway.store.devices import revoke_device

        db = await open_database(settings.db_path)
        try:
            return await revoke_device(db, device_id)
        finally:
            await db.close()

    if not run(main()):
        err_console.print(f"[red]error:[/red] no device {device_id!r}; see `tack devices list`")
        raise typer.Exit(1)
    console.print(f"revoked {device_id}")
