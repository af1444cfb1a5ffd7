"""What every command shares: the --config option and turning Tack errors into exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from devices.protocol.errors import TackError
from gateway.config import ConfigError, TackSettings, load_settings

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration file (see docs/configuration.md); TACK_* variables override it.",
        envvar="TACK_CONFIG",
    ),
]


def cli_actor() -> str:
    """Who the audit log names for a command run from a shell: ``cli:<unix user>``."""
    import getpass

    return f"cli:{getpass.getuser()}"


async def audit(
    settings: TackSettings,
    action: str,
    target: str = "",
    detail: Mapping[str, object] | None = None,
) -> None:
    """Record a command's change in the audit log (gateway/audit/), on its own connection, once
    the change is made. Changes that must commit with their entry use ``AuditLog.recording``."""
    from gateway.audit import AuditLog
    from gateway.store import open_database

    db = await open_database(settings.db_path)
    try:
        await AuditLog(db, settings.audit_head_file).append(cli_actor(), action, target, detail)
    finally:
        await db.close()


def settings_from(config: Path | None) -> TackSettings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from exc


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a Tack error becomes its message and exit code 1."""
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from exc
    except TackError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        sys.exit(130)
