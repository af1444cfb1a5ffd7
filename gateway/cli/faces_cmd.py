"""``tack faces``: the template key, enrolment from photos, and measuring the face check.

The face libraries load inside the commands (they take a second), so ``tack --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gateway.cli.common import (
    ConfigOption,
    audit,
    cli_actor,
    console,
    err_console,
    run,
    settings_from,
)
from gateway.config import TackSettings
from gateway.store.roster import bump_version

if TYPE_CHECKING:
    from gateway.security.keyring import Keyring

app = typer.Typer(help="Face templates: key, enrolment, evaluation.", no_args_is_help=True)

KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="Template key file (default: face.key_file, then {data_dir}/face.key)."
    ),
]


@app.command("keygen")
def keygen(
    key_file: KeyFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create the AES-256 key that seals face templates (back it up: without it they are lost)."""
    from gateway.verify.face.keys import create_key_file

    settings = settings_from(config)
    path = key_file or settings.face_key_file

    async def main() -> str:
        return create_key_file(path, overwrite=force)

    kid = run(main())
    console.print(f"wrote face key {kid} to {path} (mode 0600); back it up apart from the store")


@app.command("enroll")
def enroll(
    person_id: Annotated[str, typer.Argument(help="The person's id in the roster.")],
    photos: Annotated[list[Path], typer.Argument(help="One or more photos of the person.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop the person's earlier CLI templates first.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Enrol even if the person is not in the roster.")
    ] = False,
    key_file: KeyFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Encode each photo (one clear face each) and store the templates, encrypted."""
    settings = settings_from(config)
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise typer.BadParameter(f"no such file: {', '.join(missing)}", param_hint="PHOTO")

    async def main() -> tuple[int, list[tuple[int, str, str]]]:
        from gateway.store import open_database
        from gateway.verify.face import enroll_photos, limits_from
        from gateway.verify.face.errors import FaceError

        key = _keys(settings, key_file)
        db = await open_database(settings.db_path)
        try:
            if not force:
                async with db.execute(
                    "SELECT 1 FROM people WHERE person_id = ?", (person_id,)
                ) as cur:
                    if await cur.fetchone() is None:
                        raise FaceError(
                            f"{person_id} is not in the roster at {settings.db_path}; check the "
                            "id (`tack status`), wait for the bridge's roster pull, or pass --force"
                        )
            result = await enroll_photos(
                db,
                key,
                person_id,
                [p.read_bytes() for p in photos],
                source="cli",
                replace=replace,
                limits=limits_from(settings.face),
            )
        finally:
            await db.close()
        if result.enrolled:
            detail = {"enrolled": result.enrolled, "replace": replace}
            await audit(settings, "face.enroll", person_id, detail)
        return result.enrolled, [(r.index, str(r.reason), r.detail) for r in result.rejected]

    enrolled, rejected = run(main())
    for index, reason, detail in rejected:
        err_console.print(f"[yellow]skipped[/yellow] {photos[index]}: {reason} ({detail})")
    if not enrolled:
        err_console.print(f"[red]error:[/red] no usable photo of {person_id}; nothing enrolled")
        raise typer.Exit(1)
    console.print(f"enrolled {enrolled} template(s) for {person_id}")


@app.command("list")
def list_(key_file: KeyFileOption = None, config: ConfigOption = None) -> None:
    """People with face templates, and how many each."""
    settings = settings_from(config)

    async def main() -> dict[str, int]:
        from gateway.store import open_database
        from gateway.verify.face.templates import TemplateStore

        db = await open_database(settings.db_path)
        try:
            return await TemplateStore(db, _keys(settings, key_file)).counts()
        finally:
            await db.close()

    table = Table("person", "templates")
    for person, n in run(main()).items():
        table.add_row(person, str(n))
    console.print(table)


@app.command("remove")
def remove(
    person_id: Annotated[str, typer.Argument(help="The person whose templates go.")],
    config: ConfigOption = None,
) -> None:
    """Delete every face template of a person (when they leave, or ask)."""
    settings = settings_from(config)

    async def main() -> int:
        from gateway.audit import AuditLog
        from gateway.store import open_database
        from gateway.verify.face.templates import TEMPLATES_VERSION_KEY

        db = await open_database(settings.db_path)
        try:
            audit_log = AuditLog(db, settings.audit_head_file)
            async with audit_log.recording(cli_actor(), "face.delete", person_id):
                cur = await db.execute(
                    "DELETE FROM face_templates WHERE person_id = ?", (person_id,)
                )
                await bump_version(db, TEMPLATES_VERSION_KEY)
                return cur.rowcount
        finally:
            await db.close()

    console.print(f"removed {run(main())} template(s) of {person_id}")


@app.command("evaluate")
def evaluate(
    folder: Annotated[Path, typer.Argument(help="Labelled folder: manifest.csv [pairs.csv].")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where report.json, roc.png, distances.png go.")
    ] = Path("face-eval"),
    max_far: Annotated[
        float, typer.Option(help="Highest false accept rate the threshold may have.")
    ] = 0.001,
) -> None:
    """Pair accuracy, FAR and FRR over a labelled folder; ROC and histograms as PNG; the
    operating threshold chosen from the data."""

    async def main() -> dict[str, Any]:
        from gateway.verify.face.evaluate import evaluate as run_eval

        return run_eval(folder, out, max_far=max_far)

    report = run(main())
    at, one = report["at_threshold"], report["one_to_n"]
    console.print(
        f"{report['encoded']}/{report['images']} images encoded, {report['pairs_used']} pairs\n"
        f"operating threshold {report['threshold']} (FAR <= {max_far}): "
        f"accuracy {at['accuracy']:.2%}, FAR {at['far']:.2%}, FRR {at['frr']:.2%} "
        f"({at['false_accepts']} false accepts, {at['false_rejects']} false rejects)\n"
        f"1:N: threshold {one['threshold']}, margin {one['margin']}: "
        f"{one['identified']}/{one['genuine_probes']} identified, "
        f"{one['impostors_accepted']}/{one['impostor_probes']} impostors accepted"
    )
    for name, why in report["failed"].items():
        err_console.print(f"[yellow]not encoded[/yellow] {name}: {why}")
    console.print(f"wrote {out / 'report.json'}, " + ", ".join(report["plots"]))


def _keys(settings: TackSettings, key_file: Path | None) -> Keyring:
    """The keyring (which reads a legacy ``face.key`` too), or the one key of ``--key-file``."""
    from gateway.security.keyring import Keyring, keyring_for
    from gateway.verify.face.keys import load_key

    if key_file is not None:
        return Keyring.single(load_key(key_file))
    return keyring_for(settings, create=False)
