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
    room: Annotated[
        str | None, typer.Option("--room", help="The room a meeting panel shows (a room id).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register devices so the gateway accepts their messages."""
    if room is not None and not valid_id(room, MAX_DEVICE_ID_CHARS):
        err_console.print(f"[red]error:[/red] invalid room id {room!r}")
        raise typer.Exit(2)
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
                await add_device(
                    db, Device(device_id, settings.site, device_type, name, room_id=room)
                )
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
        table = Table("device", "type", "name", "room", "state", "boot", "firmware")
        for d in devices:
            p = presence.get(d.device_id)
            state = "revoked" if d.revoked else ("online" if p and p.online else "offline")
            table.add_row(
                d.device_id,
                str(d.device_type),
                d.name,
                d.room_id or "-",
                state,
                str(p.boot) if p else "-",
                (p.firmware or "-") if p else "-",
            )
        console.print(table)

    run(main())


@app.command("room")
def room_(
    device_id: Annotated[str, typer.Argument(help="The meeting panel.")],
    room: Annotated[str, typer.Argument(help="The room id it shows; '-' for none.")],
    config: ConfigOption = None,
) -> None:
    """Choose the room a meeting panel shows; the gateway publishes its schedule within a
    registry refresh."""
    settings = settings_from(config)
    room_id = None if room == "-" else room
    if room_id is not None and not valid_id(room_id, MAX_DEVICE_ID_CHARS):
        err_console.print(f"[red]error:[/red] invalid room id {room!r}")
        raise typer.Exit(2)

    async def main() -> bool:
        from gateway.store import open_database
        from gateway.store.devices import assign_room

        db = await open_database(settings.db_path)
        try:
            return await assign_room(db, device_id, room_id)
        finally:
            await db.close()

    if not run(main()):
        err_console.print(f"[red]error:[/red] no device {device_id!r}; see `tack devices list`")
        raise typer.Exit(1)
    console.print(f"{device_id} shows room {room_id or '(none)'}")


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
