"""``tack report daily``: the day's attendance per team as CSV and PNG, read from the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from gateway.cli.common import ConfigOption, console, err_console, run, settings_from

app = typer.Typer(help="Attendance reports (考勤报表).", no_args_is_help=True)


def _date(value: str, tz: str) -> dt.date:
    """YYYY-MM-DD, or today / yesterday in the site's time zone (not the machine's)."""
    if value in ("today", "yesterday"):
        today = dt.datetime.now(ZoneInfo(tz)).date()
        return today - dt.timedelta(days=0 if value == "today" else 1)
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("use YYYY-MM-DD, today or yesterday", param_hint="--date") from exc


@app.command("daily")
def daily(
    date: Annotated[str, typer.Option("--date", "-d", help="Local date YYYY-MM-DD (or today).")],
    site: Annotated[
        str | None, typer.Option(help="Site name for the files; defaults to the configured site.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder; defaults to attendance.reports_dir."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a CSV and a PNG chart per team for one day, in the site's time zone."""
    settings = settings_from(config)
    day = _date(date, settings.attendance.timezone)
    out_dir = out or settings.attendance.reports_dir or settings.data_dir / "reports"
    site_name = site or settings.site

    async def main() -> tuple[list[Path], int]:
        from gateway.attendance.policy import Policy
        from gateway.attendance.report import daily_summaries, write_daily_report
        from gateway.attendance.shifts import effective_policy
        from gateway.store import open_database
        from gateway.store.records import now_ms

        db = await open_database(settings.db_path)
        try:
            # The backend's shifts when the bridge pulled any, as at the terminal.
            policy = await effective_policy(db, Policy.from_settings(settings.attendance))
            teams = await daily_summaries(db, policy, day, now_ms=now_ms())
        finally:
            await db.close()
        people = sum(len(rows) for rows in teams.values())
        return write_daily_report(out_dir, policy, site_name, day, teams), people

    paths, people = run(main())
    if not paths:
        err_console.print(f"no people in the roster and no punches on {day}: nothing written")
        raise typer.Exit(1)
    for path in paths:
        console.print(str(path), highlight=False)
    console.print(
        f"{people} people in {len(paths) // 2} team(s), {day} ({settings.attendance.timezone})"
    )
