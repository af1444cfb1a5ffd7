"""``tack records`` and ``tack status``: what the store holds, read straight from its file, so
they work whether or not the gateway is running."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, console, run, settings_from


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def records(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only records the backend refused for good.")
    ] = False,
    state: Annotated[
        str | None,
        typer.Option(help="Only this sync state: pending, synced, failed or local."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List stored records, newest first."""
    if failed:
        state = "failed"
    if state is not None and state not in {"pending", "synced", "failed", "local"}:
        raise typer.BadParameter("use pending, synced, failed or local", param_hint="--state")
    settings = settings_from(config)

    async def main() -> list[tuple[object, ...]]:
        from gateway.store import open_database

        db = await open_database(settings.db_path)
        clauses, args = [], []
        if state:
            clauses.append("sync_state = ?")
            args.append(state)
        if device:
            clauses.append("device_id = ?")
            args.append(device)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        try:
            async with db.execute(
                "SELECT id, device_id, seq, msg_id, person_id, status, reason, sync_state,"
                f" sync_error, received_ts_ms FROM records {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ) as cur:
                return [tuple(r) for r in await cur.fetchall()]
        finally:
            await db.close()

    rows = run(main())
    table = Table("id", "device", "seq", "message", "person", "status", "sync", "received (UTC)")
    for rid, dev, seq, mid, person, status, reason, sync, error, received in rows:
        shown_status = f"{status}" if reason == "ok" else f"{status} ({reason})"
        shown_sync = f"{sync}: {error}" if error and sync == "failed" else str(sync)
        table.add_row(
            str(rid),
            str(dev),
            str(seq),
            str(mid),
            str(person or "-"),
            shown_status,
            shown_sync,
            _when(received),  # type: ignore[arg-type]
        )
    console.print(table)
    console.print(f"{len(rows)} record(s)")


def status(config: ConfigOption = None) -> None:
    """Queue depth, bridge lag, devices and roster, from the store file."""
    settings = settings_from(config)

    async def main() -> dict[str, object]:
        from gateway.store import open_database
        from gateway.store.records import sync_stats

        db = await open_database(settings.db_path)
        try:
            stats = await sync_stats(db)
            async with db.execute("SELECT count(*), sum(revoked) FROM devices") as cur:
                devices, revoked = await cur.fetchone() or (0, 0)
            async with db.execute("SELECT count(*) FROM presence WHERE online = 1") as cur:
                online = (await cur.fetchone() or (0,))[0]
            async with db.execute("SELECT count(*), sum(active) FROM people") as cur:
                people, active = await cur.fetchone() or (0, 0)
        finally:
            await db.close()
        return {
            "store": str(settings.db_path),
            "site": settings.site,
            "records": stats.total,
            "pending upload": stats.pending,
            "synced": stats.by_state.get("synced", 0),
            "failed (see tack records --failed)": stats.by_state.get("failed", 0),
            "refused at the gateway": stats.by_state.get("local", 0),
            "bridge lag": f"{stats.lag_s():.1f} s",
            "oldest pending": _when(stats.oldest_pending_ms),
            "devices": f"{devices} registered, {online} online, {revoked or 0} revoked",
            "people": f"{people} ({active or 0} active)",
        }

    table = Table("", "", show_header=False)
    for key, value in run(main()).items():
        table.add_row(key, str(value))
    console.print(table)
