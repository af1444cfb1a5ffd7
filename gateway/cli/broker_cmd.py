"""``tack broker``: write a Mosquitto configuration with TLS, device passwords and an ACL."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.common import ConfigOption, cli_actor, err_console, run, settings_from

if TYPE_CHECKING:
    from gateway.broker.setup import BrokerSetup

app = typer.Typer(help="The Mosquitto broker devices connect to.", no_args_is_help=True)


@app.command("config")
def config_(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the configuration, CA and certificates.")
    ],
    hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="A name or IP address devices use to reach the broker (repeat it); the first "
            "is what `tack devices add` prints. Default: this machine's name, localhost, "
            "127.0.0.1.",
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TLS listener for devices.")] = 8883,
    bind: Annotated[
        str | None,
        typer.Option(help="Address the TLS listener binds to; default: every interface."),
    ] = None,
    local_plain_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Also listen without TLS on 127.0.0.1 at this port, for a gateway on this "
            "machine. Off by default.",
        ),
    ] = None,
    renew_server_cert: Annotated[
        bool, typer.Option(help="Issue a new server certificate even if the current one is fine.")
    ] = False,
    reset_gateway_password: Annotated[
        bool, typer.Option(help="Issue a new password for the gateway's own broker account.")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(
            help="Group the broker runs as, given read access to the files. Default when run "
            "as root: 'mosquitto' if it exists."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a complete Mosquitto configuration: a local CA (made once, then reused), a server
    certificate, a TLS listener, the password file and the ACL from the store. Safe to re-run."""
    from gateway.broker.errors import BrokerConfigError
    from gateway.broker.setup import configure, default_group
    from gateway.broker.tls import parse_host

    settings = settings_from(config)
    names = hosts or [socket.gethostname(), "localhost", "127.0.0.1"]
    names = list(dict.fromkeys(names))
    if local_plain_port is not None and local_plain_port == port:
        err_console.print("[red]error:[/red] --local-plain-port must differ from --port")
        raise typer.Exit(2)
    try:
        for name in names:  # a bad --host fails before anything is written
            parse_host(name)
    except BrokerConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from exc
    result = run(
        configure(
            settings,
            out,
            hosts=names,
            port=port,
            bind=bind,
            local_plain_port=local_plain_port,
            renew_server_cert=renew_server_cert,
            reset_gateway_password=reset_gateway_password,
            group=group or default_group(),
            actor=cli_actor(),
        )
    )
    _report(result, settings.site)


def _report(setup: BrokerSetup, site: str) -> None:
    cert = setup.server_cert
    typer.echo(f"wrote {setup.config_file}")
    typer.echo(
        f"  CA          {setup.ca_file} ({'new' if setup.ca_created else 'kept'}; give this "
        "file to every device)",
    )
    typer.echo(
        f"  server cert {cert.path} ({'issued: ' + cert.why if cert.issued else 'kept'}; valid "
        f"until {cert.not_after:%Y-%m-%d})",
    )
    if setup.reload.reloaded_pid:
        typer.echo(f"  broker (pid {setup.reload.reloaded_pid}) reloaded")
    if setup.reload.reload_problem:
        typer.echo(f"warning: {setup.reload.reload_problem}", err=True)
    typer.echo(f"\nStart the broker:\n  mosquitto -c {setup.config_file}\n")
    info = setup.info
    plain = info.local_plain_port
    lines = ["[mqtt]"]
    if plain is not None:
        lines += ['host = "127.0.0.1"', f"port = {plain}"]
    else:
        lines += [f'host = "{info.host}"', f"port = {info.port}", "tls = true"]
        lines += [f'ca_file = "{info.ca_file}"']
    lines.append(f'username = "{setup.gateway_username}"')
    if setup.gateway_password is not None:
        lines.append(f'password = "{setup.gateway_password}"')
    lines += ["", "[broker]", f'config_dir = "{setup.out}"']
    typer.echo("Gateway configuration (tack.toml):")
    typer.echo("\n".join("  " + line for line in lines))
    if setup.gateway_password is not None:
        typer.echo(
            "The gateway's password is shown once; `--reset-gateway-password` issues a new one.",
        )
    else:
        typer.echo(
            f"The gateway account {setup.gateway_username} (site {site}) was kept: use the "
            "password you were given, or `--reset-gateway-password`.",
        )
