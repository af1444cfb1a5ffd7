"""``tack records`` and ``tack status``: what the store holds, read straight from its file, so
they work whether or not the gateway is running."""

from __future__ import annotations

import collections
import datetime as dt
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, audit, console, err_console, run, settings_from
from gateway.config import TackSettings


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def records(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only records the backend refused for good.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Queue refused records for upload again (all of them, or those given by --id).",
        ),
    ] = False,
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", min=1, help="With --retry-failed: only this record (repeatable)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(help="Only this sync state: pending, synced, failed or local."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List stored records, newest first; or, with --retry-failed, queue refused ones again."""
    if ids and not retry_failed:
        raise typer.BadParameter("--id goes with --retry-failed", param_hint="--id")
    if retry_failed:
        _retry_failed(settings_from(config), ids or None)
        return
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


def _retry_failed(settings: TackSettings, ids: list[int] | None) -> None:
    """Dead-lettered records go back to pending; the bridge (running or next started) sends
    them on its next round. Only ever on request: a refusal the backend meant for good
    (unknown user, too old) needs its cause fixed first, or it is refused again."""

    async def main() -> tuple[int, list[int]]:
        from gateway.store import open_database
        from gateway.store.records import retry_failed

        db = await open_database(settings.db_path)
        try:
            missing: list[int] = []
            if ids:
                marks = ",".join("?" * len(ids))
                async with db.execute(
                    f"SELECT id FROM records WHERE sync_state = 'failed' AND id IN ({marks})", ids
                ) as cur:
                    found = {int(r[0]) for r in await cur.fetchall()}
                missing = [i for i in ids if i not in found]
            queued = await retry_failed(db, ids)
        finally:
            await db.close()
        if queued:
            await audit(settings, "records.retry_failed", "", {"records": queued})
        return queued, missing

    queued, missing = run(main())
    if missing:
        shown = ", ".join(str(i) for i in missing)
        err_console.print(
            f"not failed (or no such record): {shown}; see tack records --failed", highlight=False
        )
    console.print(f"{queued} record(s) queued for upload again")
    if missing:
        raise typer.Exit(1)


def status(config: ConfigOption = None) -> None:
    """Queue depth, bridge lag, devices and roster, from the store file."""
    settings = settings_from(config)

    async def main() -> dict[str, object]:
        from cloud_bridge.runner import read_status
        from gateway.notices import store as notice_store
        from gateway.rooms import store as room_store
        from gateway.store import open_database
        from gateway.store.records import sync_stats

        db = await open_database(settings.db_path)
        try:
            stats = await sync_stats(db)
            bridge = await read_status(db)
            async with db.execute(
                "SELECT sync_error, count(*) FROM records WHERE sync_state = 'failed'"
                " GROUP BY sync_error"
            ) as cur:
                failed_by: collections.Counter[str] = collections.Counter()
                for why, n in await cur.fetchall():
                    failed_by[_reason_head(str(why or "unknown"))] += int(n)
            async with db.execute("SELECT count(*), sum(revoked) FROM devices") as cur:
                devices, revoked = await cur.fetchone() or (0, 0)
            async with db.execute("SELECT count(*) FROM presence WHERE online = 1") as cur:
                online = (await cur.fetchone() or (0,))[0]
            async with db.execute("SELECT count(*), sum(active) FROM people") as cur:
                people, active = await cur.fetchone() or (0, 0)
            rooms = await room_store.outbox_counts(db)
            notices = await notice_store.counts(db)
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
            **_bridge_rows(bridge, stats.pending),
            "failed by reason": ", ".join(f"{w} ({n})" for w, n in failed_by.most_common()) or "-",
            "devices": f"{devices} registered, {online} online, {revoked or 0} revoked",
            "people": f"{people} ({active or 0} active)",
            "room changes to the backend": _upload_row(rooms),
            "notice receipts to the backend": _upload_row(notices),
            "notices unread (see tack notices)": notices.get("unread", 0),
        }

    table = Table("", "", show_header=False)
    for key, value in run(main()).items():
        table.add_row(key, str(value))
    console.print(table)


def _upload_row(counts: dict[str, int]) -> str:
    """Write-backs the bridge drains besides records: check-ins, bookings, receipts."""
    return (
        f"{counts.get('pending', 0)} pending, {counts.get('synced', 0)} sent, "
        f"{counts.get('failed', 0)} refused"
    )


# A running bridge saves its status every second; much older than that, it is not running.
STALE_STATUS_S = 15.0


def _bridge_rows(bridge: dict[str, Any] | None, pending: int) -> dict[str, object]:
    """What the bridge last saved about its uploads (it saves once a second while it runs)."""
    if bridge is None:
        return {"bridge": "has not run on this store"}
    rate = float(bridge.get("drain_per_s") or 0.0)
    if pending == 0:
        drain = "queue empty"
    elif bridge.get("state") != "running":
        drain = "bridge not running: nothing is being sent"
    elif time.time() * 1000 - float(bridge.get("ts_ms") or 0) > STALE_STATUS_S * 1000:
        drain = f"no word from the bridge for over {STALE_STATUS_S:.0f} s (stopped or stuck?)"
    elif rate <= 0:
        drain = "not draining (see last error)"
    else:
        drain = f"{rate:.1f} records/s, about {_duration(pending / rate)} left"
    causes = bridge.get("retry_causes") or {}
    return {
        "bridge": f"{bridge.get('state', '?')} (saved {_when(bridge.get('ts_ms'))})",
        "upload rate": drain,
        "upload calls": f"{bridge.get('uploaded', 0)} stored, {bridge.get('duplicates', 0)} "
        f"duplicates, {bridge.get('refused', 0)} refused, {bridge.get('retries', 0)} retried",
        "retries by cause": ", ".join(f"{k} ({v})" for k, v in sorted(causes.items())) or "-",
        "last error": bridge.get("last_error") or "-",
    }


def _reason_head(reason: str) -> str:
    """A refusal reason without its detail: "errcode 33012" from "errcode 33012: unknown userid
    u9", so reasons group; local refusals by their first words."""
    return reason.split(":", 1)[0].split(" (", 1)[0][:60]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
