"""``tack retention purge``: remove personal data older than the retention settings now,
instead of waiting for the gateway's daily purge (docs/data-protection.md)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.common import ConfigOption, cli_actor, console, run, settings_from

if TYPE_CHECKING:
    from gateway.security.retention import PurgeResult

app = typer.Typer(help="Retention of personal data.", no_args_is_help=True)


def _cut(ms: int | None) -> str:
    if ms is None:
        return "kept for ever (0)"
    return "before " + dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command("purge")
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would go; change nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Delete camera frames and finished records older than retention.* (pending records and
    dead letters are never deleted). Audited as retention.purge."""
    settings = settings_from(config)

    async def main() -> PurgeResult:
        from gateway.security.retention import purge as do_purge

        return await do_purge(settings, actor=cli_actor(), dry_run=dry_run)

    r = run(main())
    verb = "would delete" if r.dry_run else "deleted"
    console.print(
        f"{verb} {r.records} record(s) (received {_cut(r.records_cutoff_ms)}, uploaded or local "
        f"only) and {r.frames} camera frame(s) (received {_cut(r.frames_cutoff_ms)}, or with "
        "their record)"
    )
