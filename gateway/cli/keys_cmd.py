"""``tack keys``: the keyring that seals personal data at rest (docs/data-protection.md).

``rotate`` runs while the gateway runs: the gateway picks the new key up by itself.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from gateway.cli.common import ConfigOption, cli_actor, console, run, settings_from

if TYPE_CHECKING:
    from gateway.security.keyring import Keyring
    from gateway.security.rotation import RotationReport

app = typer.Typer(help="The keyring: create it, show it, rotate keys.", no_args_is_help=True)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


@app.command("init")
def init(config: ConfigOption = None) -> None:
    """Create the keyring (from the old face.key when there is one); keep a copy of it."""
    from gateway.security.keyring import Keyring

    settings = settings_from(config)
    path = settings.keyring_file
    if path.exists():
        console.print(f"keyring {path} exists already; nothing to do (see `tack keys status`)")
        return

    async def main() -> Keyring:
        return Keyring.load(path, legacy_file=settings.face_key_file, create=True)

    ring = run(main())
    console.print(
        f"wrote keyring {path} (mode 0600) with key {ring.current_id}; copy it somewhere safe, "
        "apart from the store and its backups: nothing sealed can be read without it"
    )


@app.command("status")
def status(config: ConfigOption = None) -> None:
    """Key ids, which is current, and how many rows each one seals."""
    settings = settings_from(config)

    async def main() -> tuple[Keyring, dict[str, dict[str, int]]]:
        from gateway.security.keyring import Keyring
        from gateway.security.rotation import key_usage
        from gateway.store import open_database

        ring = Keyring.load(settings.keyring_file, legacy_file=settings.face_key_file, create=False)
        db = await open_database(settings.db_path)
        try:
            return ring, await key_usage(db)
        finally:
            await db.close()

    from gateway.security.rotation import CLEAR, TABLES

    ring, usage = run(main())
    table = Table("key", "state", "created (UTC)", *TABLES)
    for e in ring.entries():
        state = "current" if e.key_id == ring.current_id else "retired" if e.retired else "old"
        counts = usage.get(e.key_id, {})
        table.add_row(
            e.key_id, state, _when(e.created_ms), *(str(counts.get(t, 0)) for t in TABLES)
        )
    for kid, counts in usage.items():
        if kid != CLEAR and not ring.knows(kid):
            table.add_row(kid, "MISSING", "-", *(str(counts.get(t, 0)) for t in TABLES))
    if CLEAR in usage:
        table.add_row(CLEAR, "not sealed", "-", *(str(usage[CLEAR].get(t, 0)) for t in TABLES))
    console.print(f"keyring {ring.path}")
    console.print(table)
    if CLEAR in usage:
        console.print("rows from before schema v10 are in the clear: `tack keys rotate` seals them")
    if ring.active_old_ids():
        console.print("a rotation has not finished: run `tack keys rotate` to finish it")


@app.command("rotate")
def rotate(config: ConfigOption = None) -> None:
    """Make a new current key, seal every row again with it in small batches (the gateway may
    keep running), then retire the old key. Rerun after an interruption: it finishes the same
    rotation."""
    settings = settings_from(config)
    actor = cli_actor()

    async def main() -> RotationReport:
        from gateway.security.rotation import rotate as do_rotate

        with Progress(
            TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(table, total=total)
                bar.update(tasks[table], completed=done, total=total)

            return await do_rotate(settings, actor=actor, progress=progress)

    report = run(main())
    how = "finished the interrupted rotation" if report.resumed else "rotated"
    moved = ", ".join(f"{n} {t}" for t, n in report.resealed.items() if n) or "no rows"
    console.print(f"{how}: current key {report.new_key}; sealed again: {moved}")
    if report.retired:
        console.print(
            f"retired {', '.join(report.retired)} (kept in the keyring for older backups); "
            "copy the keyring file to your safe place again now"
        )
    else:
        console.print(
            "the old key is still in use by some rows; run `tack keys rotate` again to finish"
        )
        raise typer.Exit(1)
