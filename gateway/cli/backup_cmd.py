"""``tack backup``: encrypted store backups (docs/data-protection.md).

``create``, ``list`` and ``verify`` work while the gateway runs; ``restore`` refuses until the
gateway is stopped, and checks the whole backup before it replaces anything.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, cli_actor, console, err_console, run, settings_from

if TYPE_CHECKING:
    from gateway.security.backup import BackupInfo, RestoreResult

app = typer.Typer(help="Encrypted backups: create, list, verify, restore.", no_args_is_help=True)

BackupArg = Annotated[
    Path, typer.Argument(help="A backup file, or its name in backup.dir (see `tack backup list`).")
]


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _resolve(path: Path, backup_dir: Path) -> Path:
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    return backup_dir / path


@app.command("create")
def create(config: ConfigOption = None) -> None:
    """Back the store up now (consistent while the gateway writes), sealed with the keyring."""
    settings = settings_from(config)

    async def main() -> BackupInfo:
        from gateway.security.backup import create_backup

        return await create_backup(settings, actor=cli_actor())

    info = run(main())
    console.print(
        f"wrote {info.path} ({info.size:,} bytes, store sha256 {info.sha256[:16]}…, key "
        f"{info.key_id}); restoring it needs the keyring file {settings.keyring_file}"
    )


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Backups in backup.dir, newest first."""
    from gateway.security.backup import list_backups

    settings = settings_from(config)
    table = Table("name", "created (UTC)", "size", "schema", "key", "store sha256")
    infos = list_backups(settings)
    for b in infos:
        table.add_row(
            b.path.name,
            _when(b.created_ms),
            f"{b.size:,}",
            str(b.schema_version),
            b.key_id,
            b.sha256[:16] + "…",
        )
    console.print(table)
    console.print(f"{len(infos)} backup(s) in {settings.backup_dir}")


@app.command("verify")
def verify(backup: BackupArg, config: ConfigOption = None) -> None:
    """Check a backup as a restore would (manifest, key, every chunk, checksum, integrity)."""
    settings = settings_from(config)
    path = _resolve(backup, settings.backup_dir)

    async def main() -> BackupInfo:
        import asyncio

        from gateway.security.backup import backup_keyring, verify_backup

        ring = backup_keyring(settings)
        return await asyncio.to_thread(verify_backup, path, ring, settings.db_path.parent)

    info = run(main())
    console.print(
        f"{path.name} is sound: store of {info.db_size:,} bytes, schema {info.schema_version}, "
        f"made {_when(info.created_ms)} UTC by Tack {info.tack_version}"
    )


@app.command("restore")
def restore(
    backup: BackupArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before replacing the store.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Replace the store with a backup, after checking all of it. Stop the gateway first; the
    replaced store is kept beside it."""
    settings = settings_from(config)
    path = _resolve(backup, settings.backup_dir)
    if not yes and not typer.confirm(
        f"replace the store {settings.db_path} with {path.name}?", default=False
    ):
        err_console.print("nothing replaced")
        raise typer.Exit(1)

    async def main() -> RestoreResult:
        from gateway.security.backup import restore_backup

        return await restore_backup(
            settings, path, actor=cli_actor(), progress=lambda m: console.print(m, highlight=False)
        )

    result = run(main())
    kept = f"; the replaced store is kept as {result.replaced}" if result.replaced else ""
    console.print(
        f"restored {path.name} (made {_when(result.info.created_ms)} UTC) into "
        f"{settings.db_path}{kept}"
    )
