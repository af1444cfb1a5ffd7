"""``tack notices``: send must-read notices (必达) to devices and see who has read them.

Like ``tack records``, every command works on the store file, whether or not the gateway runs:
a notice sent here is published by the running gateway within a registry refresh
(``registry.refresh_s``), or by the gateway's next start.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, audit, console, err_console, run, settings_from

if TYPE_CHECKING:
    from gateway.notices.store import Notice, Target, Unread

app = typer.Typer(
    help="Must-read notices: send them to devices, list the unread ones, see who read one.",
    invoke_without_command=True,
)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(ms: int, now_ms: int) -> str:
    minutes = max(0, now_ms - ms) // 60_000
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d"


@app.callback()
def unread(ctx: typer.Context, config: ConfigOption = None) -> None:
    """List notices not yet acknowledged, one row per device (with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from(config)

    async def main() -> list[Unread]:
        from gateway.notices import store
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            return await store.unread(db)
        finally:
            await db.close()

    rows = run(main())
    now_ms = time.time_ns() // 1_000_000
    table = Table("notice", "title", "device", "sent (UTC)", "age")
    for r in rows:
        table.add_row(
            r.notice_id,
            r.title or "-",
            r.device_id,
            _when(r.sent_ts_ms) if r.sent_ts_ms is not None else "not yet (device offline?)",
            _age(r.created_ts_ms, now_ms),
        )
    console.print(table)
    console.print(f"{len(rows)} unread")


@app.command("send")
def send(
    text: Annotated[str, typer.Option("--text", help="What people must read (at most 280).")],
    title: Annotated[str, typer.Option("--title", help="A heading (at most 64).")] = "",
    to: Annotated[
        str | None,
        typer.Option("--to", help="Device ids, comma-separated: DEV[,DEV...]"),
    ] = None,
    all_terminals: Annotated[
        bool, typer.Option("--all-terminals", help="Every registered clock-in terminal.")
    ] = False,
    all_panels: Annotated[
        bool, typer.Option("--all-panels", help="Every registered meeting-room panel.")
    ] = False,
    sender: Annotated[
        str | None, typer.Option("--from", help="Who it is from, as people should read it.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Send a must-read notice; each device shows it until someone acknowledges it."""
    devices = [d.strip() for d in (to or "").split(",") if d.strip()]
    if to is not None and not devices:
        raise typer.BadParameter("name at least one device: --to DEV[,DEV...]", param_hint="--to")
    if not devices and not all_terminals and not all_panels:
        raise typer.BadParameter(
            "say where it goes: --to DEV[,DEV...], --all-terminals or --all-panels",
            param_hint="--to",
        )
    settings = settings_from(config)

    async def main() -> tuple[str, list[str]]:
        from gateway.notices.service import send_notice
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            notice, targets = await send_notice(
                db,
                title=title,
                text=text,
                sender=sender,
                to=devices,
                all_terminals=all_terminals,
                all_panels=all_panels,
            )
        finally:
            await db.close()
        # The devices it went to and its length: the text itself is in the notice, not here.
        detail = {"devices": len(targets), "chars": len(text)}
        await audit(settings, "notice.send", notice.notice_id, detail)
        return notice.notice_id, targets

    notice_id, targets = run(main())
    console.print(f"notice {notice_id} sent to {len(targets)} device(s): {', '.join(targets)}")


@app.command("show")
def show(
    notice_id: Annotated[str, typer.Argument(help="The notice id `tack notices send` printed.")],
    config: ConfigOption = None,
) -> None:
    """One notice, and per device: read at, by whom, or not yet."""
    settings = settings_from(config)

    async def main() -> tuple[Notice | None, list[Target]]:
        from gateway.notices import store
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        try:
            return await store.get_notice(db, notice_id), await store.targets(db, notice_id)
        finally:
            await db.close()

    notice, rows = run(main())
    if notice is None:
        err_console.print(
            f"[red]error:[/red] no notice {notice_id!r}; see `tack notices`", highlight=False
        )
        raise typer.Exit(1)
    console.print(
        f"{notice.notice_id}: {notice.title or '(no title)'} — from {notice.sender or '-'}, "
        f"sent {_when(notice.created_ts_ms)} UTC",
        highlight=False,
    )
    console.print(notice.text, highlight=False)
    table = Table("device", "delivered (UTC)", "read at (UTC)", "by", "uploaded")
    read = 0
    for t in rows:
        read += t.receipt_ts_ms is not None
        by = t.receipt_by or "-"
        if t.receipt_person_id:
            by = f"{by} ({t.receipt_person_id})"
        upload = t.upload_state if t.upload_state != "failed" else f"failed: {t.upload_error}"
        table.add_row(
            t.device_id,
            _when(t.sent_ts_ms),
            _when(t.receipt_ts_ms) if t.receipt_ts_ms is not None else "not yet",
            by if t.receipt_ts_ms is not None else "-",
            upload if t.receipt_ts_ms is not None else "-",
        )
    console.print(table)
    console.print(f"read on {read} of {len(rows)} device(s)")
