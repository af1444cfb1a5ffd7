"""``tack audit``: read, verify and export the audit log (gateway/audit/).

Works on the store file whether or not the gateway runs. ``verify`` exits 1 when the chain is
broken, so a cron job or a monitoring check can run it as is.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from gateway.cli.common import ConfigOption, console, err_console, run, settings_from

if TYPE_CHECKING:
    from gateway.audit import AuditEntry, VerifyResult

app = typer.Typer(help="The audit log: list, verify and export it.", no_args_is_help=True)


class ExportFormat(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, help="Newest N entries.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this account's actions.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. device.revoke.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show the newest entries."""
    settings = settings_from(config)

    async def main() -> list[AuditEntry]:
        from gateway.audit import AuditLog
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            log = AuditLog(db, settings.audit_head_file)
            return await log.entries(actor=actor, action=action, limit=limit, newest_first=True)
        finally:
            await db.close()

    table = Table("id", "when (UTC)", "actor", "action", "target", "detail")
    for e in run(main()):
        # Text, not markup: a target is whatever was typed at a login form, "[/]" included.
        cells = (e.actor, e.action, e.target, str(e.detail or ""))
        table.add_row(str(e.id), _when(e.ts_ms), *(Text(c) for c in cells))
    console.print(table)


@app.command("verify")
def verify(config: ConfigOption = None) -> None:
    """Check the hash chain: exit 0 when whole, 1 naming each entry that was changed or removed."""
    settings = settings_from(config)

    async def main() -> VerifyResult:
        from gateway.audit import AuditLog
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            return await AuditLog(db, settings.audit_head_file).verify()
        finally:
            await db.close()

    result = run(main())
    if result.ok:
        console.print(f"audit log intact: {result.checked} entries, chain and head agree")
        return
    for p in result.problems:
        err_console.print(f"[red]entry {p.entry_id}:[/red] {p.what}", highlight=False)
    err_console.print(
        f"[red]audit log tampered with:[/red] {len(result.problems)} problem(s) in "
        f"{result.checked} entries; compare with an exported copy or a backup"
    )
    raise typer.Exit(1)


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write; standard output if left out.")
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.JSONL,
    config: ConfigOption = None,
) -> None:
    """Write the whole log with its hashes, so a copy kept elsewhere can prove it later."""
    settings = settings_from(config)

    async def main() -> str:
        from gateway.audit import AuditLog
        from gateway.audit.chain import export_csv, export_jsonl
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            entries = await AuditLog(db, settings.audit_head_file).entries()
        finally:
            await db.close()
        return export_csv(entries) if fmt is ExportFormat.CSV else export_jsonl(entries)

    text = run(main())
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {text.count(chr(10)) - (fmt is ExportFormat.CSV)} entries to {out}")
