"""``tack accounts``: admin accounts of the web UI and API (docs/admin.md).

Run on the gateway's machine: whoever can run this can already read the store, so this is how
the first admin is made. Passwords come from a prompt (asked twice) or, for scripts, from
standard input with ``--password-stdin``; never from an argument, which would land in the
shell's history and the process list. Every change is audited as ``cli:<unix user>``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, cli_actor, console, err_console, run, settings_from

if TYPE_CHECKING:
    import aiosqlite

    from gateway.audit import AuditLog

# (store, audit log, actor) -> the change, made and audited
Change = Callable[["aiosqlite.Connection", "AuditLog", str], Awaitable[None]]

app = typer.Typer(help="Admin accounts: add, list, passwd, role, disable.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input (first line)."),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            err_console.print("[red]error:[/red] no password on standard input")
            raise typer.Exit(2)
        return line.rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _role(value: str) -> str:
    from gateway.admin.permissions import Role

    names = [r.value for r in Role]
    if value not in names:
        raise typer.BadParameter(f"use one of {', '.join(names)}", param_hint="ROLE")
    return value


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Lower-case login name, e.g. 'li.wei'.")],
    role: Annotated[
        str, typer.Option("--role", help="admin, facilities or viewer (docs/admin.md).")
    ] = "viewer",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Create an account; make the first one with `--role admin`."""
    role = _role(role)
    settings = settings_from(config)
    password = _password(password_stdin)

    async def main() -> None:
        from gateway.admin.accounts import add_account
        from gateway.admin.permissions import Role
        from gateway.audit import AuditLog
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            log = AuditLog(db, settings.audit_head_file)
            await add_account(db, log, cli_actor(), username, Role(role), password)
        finally:
            await db.close()

    run(main())
    console.print(f"added {username} ({role})")


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Accounts with their role and state."""
    settings = settings_from(config)

    async def main() -> list[tuple[str, str, bool]]:
        from gateway.admin.accounts import list_accounts
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            return [(a.username, str(a.role), a.disabled) for a in await list_accounts(db)]
        finally:
            await db.close()

    rows = run(main())
    table = Table("account", "role", "state")
    for name, role, disabled in rows:
        table.add_row(name, role, "disabled" if disabled else "enabled")
    console.print(table)
    if not rows:
        console.print(
            "no accounts yet: create the first admin with `tack accounts add NAME --role admin`"
        )


def _change(config: ConfigOption, what: str, change: Change) -> None:
    settings = settings_from(config)

    async def main() -> None:
        from gateway.audit import AuditLog
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            await change(db, AuditLog(db, settings.audit_head_file), cli_actor())
        finally:
            await db.close()

    run(main())
    console.print(what)


@app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument(help="The account.")],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password; the account's open sessions end."""
    password = _password(password_stdin)
    from gateway.admin.accounts import set_password

    _change(
        config,
        f"password of {username} changed; its sessions ended",
        lambda db, log, actor: set_password(db, log, actor, username, password),
    )


@app.command("role")
def role_(
    username: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[str, typer.Argument(help="admin, facilities or viewer.")],
    config: ConfigOption = None,
) -> None:
    """Give the account another role; its open sessions end."""
    role = _role(role)
    from gateway.admin.accounts import set_role
    from gateway.admin.permissions import Role

    _change(
        config,
        f"{username} is now {role}; its sessions ended",
        lambda db, log, actor: set_role(db, log, actor, username, Role(role)),
    )


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The account.")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Stop an account from logging in (its sessions end at once); --enable undoes it."""
    from gateway.admin.accounts import set_disabled

    _change(
        config,
        f"{username} {'enabled' if enable else 'disabled'}",
        lambda db, log, actor: set_disabled(db, log, actor, username, not enable),
    )
