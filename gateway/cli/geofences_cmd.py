"""``tack geofences``: the site's geofences, from a JSON file or one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, audit, console, err_console, run, settings_from

app = typer.Typer(help="Geofences for GPS punches (see docs/attendance.md).", no_args_is_help=True)


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help='JSON: {"geofences": [{name, kind, ...}]}.')],
    config: ConfigOption = None,
) -> None:
    """Replace the site's local geofences with those in FILE (the backend's stay)."""
    from gateway.verify.geo.fence import GeofenceError, fences_from_json

    try:
        fences = fences_from_json(file.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
        return
    except GeofenceError as exc:
        _fail(f"{file}: {exc.message}")
        return
    settings = settings_from(config)

    async def main() -> int:
        from gateway.store import open_database
        from gateway.verify.geo.store import replace_fences

        db = await open_database(settings.db_path)
        try:
            loaded = await replace_fences(db, settings.site, fences)
        finally:
            await db.close()
        await audit(settings, "geofence.load", settings.site, {"fences": loaded})
        return loaded

    console.print(f"site {settings.site}: {run(main())} geofence(s) loaded from {file}")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name people recognise, e.g. 'hq-campus'.")],
    center: Annotated[str | None, typer.Option(help="Circle centre 'lat,lon' in degrees.")] = None,
    radius_m: Annotated[float | None, typer.Option(help="Circle radius in metres.")] = None,
    polygon: Annotated[
        str | None,
        typer.Option(help="Polygon 'lat,lon;lat,lon;...' (at least 3 vertices; no holes here)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add or replace one geofence: a circle (--center, --radius-m) or a polygon (--polygon)."""
    from gateway.verify.geo.fence import Circle, Geofence, GeofenceError, PolygonFence

    def pair(text: str) -> tuple[float, float]:
        lat, lon = (float(v) for v in text.split(","))
        return lat, lon

    fence: Geofence
    try:
        if center is not None and radius_m is not None and polygon is None:
            fence = Circle(name, *pair(center), radius_m)
        elif polygon is not None and center is None and radius_m is None:
            fence = PolygonFence(name, tuple(pair(p) for p in polygon.split(";") if p.strip()))
        else:
            _fail("give either --center and --radius-m, or --polygon")
            return
    except ValueError:
        _fail("coordinates are 'lat,lon' in decimal degrees, e.g. 31.2304,121.4737")
        return
    except GeofenceError as exc:
        _fail(exc.message)
        return
    settings = settings_from(config)

    async def main() -> None:
        from gateway.store import open_database
        from gateway.verify.geo.store import upsert_fence

        db = await open_database(settings.db_path)
        try:
            await upsert_fence(db, settings.site, fence)
        finally:
            await db.close()
        await audit(settings, "geofence.save", name, {"kind": fence.kind})

    run(main())
    console.print(f"site {settings.site}: geofence {name} ({fence.kind}) saved")


@app.command("remove")
def remove(name: str, config: ConfigOption = None) -> None:
    """Remove one geofence."""
    settings = settings_from(config)

    async def main() -> bool:
        from gateway.store import open_database
        from gateway.verify.geo.store import delete_fence

        db = await open_database(settings.db_path)
        try:
            removed = await delete_fence(db, settings.site, name)
        finally:
            await db.close()
        if removed:
            await audit(settings, "geofence.remove", name)
        return removed

    if not run(main()):
        _fail(f"site {settings.site} has no geofence {name!r}")
    console.print(f"site {settings.site}: geofence {name} removed")


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """List the site's geofences, and where each came from (local or the backend)."""
    settings = settings_from(config)

    async def main() -> tuple[list[object], dict[str, str]]:
        from gateway.store import open_database
        from gateway.verify.geo.store import fence_sources, load_fences

        db = await open_database(settings.db_path)
        try:
            return list(await load_fences(db, settings.site)), await fence_sources(
                db, settings.site
            )
        finally:
            await db.close()

    from gateway.verify.geo.fence import Circle, PolygonFence

    fences, sources = run(main())
    table = Table("name", "kind", "source", "shape")
    for fence in fences:
        if isinstance(fence, Circle):
            shape = f"centre {fence.lat:.7f},{fence.lon:.7f}, radius {fence.radius_m:g} m"
        elif isinstance(fence, PolygonFence):
            holes = f", {len(fence.holes)} hole(s)" if fence.holes else ""
            shape = f"{len(fence.shell)} vertices{holes}, {fence.area_m2:,.0f} m²"
        else:
            continue
        table.add_row(fence.name, fence.kind, sources.get(fence.name, ""), shape)
    console.print(table)
