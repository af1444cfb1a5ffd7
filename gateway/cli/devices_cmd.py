"""``tack devices``: register, list and revoke devices, and manage their MQTT credentials."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from devices.protocol.limits import MAX_DEVICE_ID_CHARS
from devices.protocol.topics import valid_id
from gateway.cli.common import (
    ConfigOption,
    audit,
    cli_actor,
    console,
    err_console,
    run,
    settings_from,
)
from gateway.store.devices import DeviceType

if TYPE_CHECKING:
    import aiosqlite

    from gateway.audit import AuditLog
    from gateway.broker.credentials import ApplyResult
    from gateway.broker.provisioning import Provisioned
    from gateway.config import TackSettings

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
    no_credentials: Annotated[
        bool,
        typer.Option(
            "--no-credentials", help="Issue no MQTT password (for a broker without auth)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list, for provisioning scripts.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Register devices so the gateway accepts their messages, and give each its MQTT username
    and password (printed once: only a hash is kept)."""
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
    done: list[Provisioned] = []
    applied: list[ApplyResult] = []

    async def main() -> None:
        from gateway.broker import provisioning
        from gateway.store.devices import Device

        async with _store(settings) as (db, log):
            try:
                for device_id in device_ids:
                    device = Device(device_id, settings.site, device_type, name, room_id=room)
                    done.append(
                        await provisioning.add(
                            db, log, cli_actor(), device, with_credentials=not no_credentials
                        )
                    )
            finally:
                # Devices added before one that failed keep their credentials: they must
                # reach the broker, and their passwords be printed, all the same.
                applied.append(
                    await _apply(db, settings, changed=bool(done) and not no_credentials)
                )

    try:
        run(main())
    finally:
        _print_added(settings, done, as_json)
        if applied and done:
            _print_apply(settings, applied[0], quiet=as_json)


@app.command("credentials")
def credentials_(
    device_id: Annotated[str, typer.Argument(help="The device.")],
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Issue a new password; the old one stops working."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show whether a device has MQTT credentials, or issue new ones with --reset (the only way
    to learn a password again: it is never kept in clear)."""
    settings = settings_from(config)

    async def main() -> tuple[Provisioned | None, ApplyResult | None]:
        from gateway.broker import credentials, provisioning

        async with _store(settings) as (db, log):
            if not reset:
                if await credentials.has_credentials(db, device_id):
                    return None, None
                raise provisioning.NoSuchDeviceError(
                    f"{device_id!r} has no MQTT credentials; issue them with "
                    f"`tack devices credentials {device_id} --reset`"
                )
            issued = await provisioning.reset(db, log, cli_actor(), device_id)
            return issued, await _apply(db, settings, changed=True)

    issued, result = run(main())
    if issued is None:
        console.print(
            f"{device_id} has MQTT credentials; the password is not kept, `--reset` issues "
            "a new one"
        )
        return
    _print_added(settings, [issued], as_json, verb="new credentials for")
    if result is not None:
        _print_apply(settings, result, quiet=as_json)


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
            assigned = await assign_room(db, device_id, room_id)
        finally:
            await db.close()
        if assigned:
            await audit(settings, "device.room", device_id, {"room": room_id})
        return assigned

    if not run(main()):
        err_console.print(f"[red]error:[/red] no device {device_id!r}; see `tack devices list`")
        raise typer.Exit(1)
    console.print(f"{device_id} shows room {room_id or '(none)'}")


@app.command("revoke")
def revoke(
    device_id: Annotated[str, typer.Argument(help="The device to revoke.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a device: the broker refuses its next connection and the gateway refuses its
    messages with 'device_revoked' from now on."""
    settings = settings_from(config)

    async def main() -> ApplyResult:
        from gateway.broker import provisioning

        async with _store(settings) as (db, log):
            await provisioning.revoke(db, log, cli_actor(), device_id)
            return await _apply(db, settings, changed=True)

    result = run(main())
    console.print(f"revoked {device_id}")
    _print_apply(settings, result, quiet=False)


@contextlib.asynccontextmanager
async def _store(settings: TackSettings) -> AsyncIterator[tuple[aiosqlite.Connection, AuditLog]]:
    from gateway.audit import AuditLog
    from gateway.store import open_database

    db = await open_database(settings.db_path)
    try:
        yield db, AuditLog(db, settings.audit_head_file)
    finally:
        await db.close()


async def _apply(db: aiosqlite.Connection, settings: TackSettings, *, changed: bool) -> ApplyResult:
    from gateway.broker.credentials import ApplyResult, apply_files

    if not changed:
        return ApplyResult(written=False)
    return await apply_files(db, settings)


def _print_added(
    settings: TackSettings, done: list[Provisioned], as_json: bool, verb: str = "added"
) -> None:
    if not done:
        return
    from gateway.broker.provisioning import device_endpoint

    endpoint = device_endpoint(settings)
    if as_json:
        rows = [
            {
                "device_id": p.device.device_id,
                "site": p.device.site,
                "type": str(p.device.device_type),
                "username": p.device.device_id if p.password else None,
                "password": p.password,
                "host": endpoint.host,
                "port": endpoint.port,
                "tls": endpoint.tls,
                "ca_file": endpoint.ca_file,
            }
            for p in done
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for p in done:
        d = p.device
        console.print(f"{verb} {d.device_id} ({d.device_type}) at site {d.site}", highlight=False)
        if p.password is None:
            continue
        tls = f"TLS, CA file {endpoint.ca_file or 'system CAs'}" if endpoint.tls else "no TLS"
        console.print(
            f"  broker   {endpoint.host}:{endpoint.port} ({tls})\n"
            f"  username {d.device_id}\n"
            f"  password {p.password}\n"
            "  (shown once, only a hash is kept; "
            f"`tack devices credentials {d.device_id} --reset` issues a new one)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _print_apply(settings: TackSettings, result: ApplyResult, *, quiet: bool) -> None:
    """Say where the credential change stands at the broker; warnings go to stderr always."""
    if settings.broker.config_dir is None:
        err_console.print(
            "note: broker.config_dir is not set, so no broker password file was changed; see "
            "docs/device-credentials.md (`tack broker config`)",
            highlight=False,
        )
    elif result.reload_problem:
        err_console.print(f"[yellow]warning:[/yellow] {result.reload_problem}", highlight=False)
    elif not quiet and result.written:
        state = (
            f"broker (pid {result.reloaded_pid}) reloaded"
            if result.reloaded_pid
            else "no running broker found; it reads the file when it starts"
        )
        console.print(f"broker password file updated; {state}", highlight=False)
