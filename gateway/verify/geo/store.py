"""Geofences in the store, one set per site, and the last fixes the speed check starts from.

Each fence remembers where it came from (``source``): ``local`` for ``tack geofences``, ``backend``
for the bridge's pull. Each source replaces its own fences as a whole, like the roster: what the
backend or the file says is the truth, and a re-load repairs any drift, but a pull never touches
a fence someone loaded by hand. When both name the same fence, the local one wins: it was put
there on purpose, on this site.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from gateway.security.keyring import Keyring
from gateway.security.sealed_fields import open_record
from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.roster import bump_version
from gateway.verify.geo.check import Fix
from gateway.verify.geo.fence import Geofence, fence_from_spec

GEOFENCES_VERSION_KEY = "geofences.version"
LOCAL = "local"
BACKEND = "backend"


async def replace_fences(
    db: aiosqlite.Connection, site: str, fences: Iterable[Geofence], *, source: str = LOCAL
) -> int:
    """The site's fences of ``source`` become exactly ``fences``; bumps ``geofences.version``.

    Returns how many were saved: a backend fence named like a local one is skipped.
    """
    rows = [(site, f.name, f.kind, json.dumps(f.spec()), now_ms(), source) for f in fences]
    # A local fence overwrites a backend one of the same name; a backend fence never a local one.
    on_conflict = (
        "DO UPDATE SET kind = excluded.kind, spec = excluded.spec,"
        " updated_ts_ms = excluded.updated_ts_ms, source = excluded.source"
        if source == LOCAL
        else "DO NOTHING"
    )
    saved = 0
    async with write_transaction(db, f"saving the {source} geofences of site {site}"):
        await db.execute("DELETE FROM geofences WHERE site = ? AND source = ?", (site, source))
        for row in rows:
            cur = await db.execute(
                "INSERT INTO geofences (site, name, kind, spec, updated_ts_ms, source)"
                f" VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, name) {on_conflict}",
                row,
            )
            saved += cur.rowcount or 0
        await _bump(db)
    return saved


async def upsert_fence(db: aiosqlite.Connection, site: str, fence: Geofence) -> None:
    """Add or replace one local fence (``tack geofences add``)."""
    async with write_transaction(db, f"saving geofence {fence.name}"):
        await db.execute(
            "INSERT INTO geofences (site, name, kind, spec, updated_ts_ms, source)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (site, name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec,"
            " updated_ts_ms = excluded.updated_ts_ms, source = excluded.source",
            (site, fence.name, fence.kind, json.dumps(fence.spec()), now_ms(), LOCAL),
        )
        await _bump(db)


async def delete_fence(db: aiosqlite.Connection, site: str, name: str) -> bool:
    async with write_transaction(db, f"deleting geofence {name}"):
        cur = await db.execute("DELETE FROM geofences WHERE site = ? AND name = ?", (site, name))
        await _bump(db)
    return (cur.rowcount or 0) > 0


async def load_fences(db: aiosqlite.Connection, site: str) -> list[Geofence]:
    """The site's fences; a stored fence that no longer builds raises ``GeofenceError``."""
    async with db.execute(
        "SELECT name, kind, spec FROM geofences WHERE site = ? ORDER BY name", (site,)
    ) as cur:
        rows = await cur.fetchall()
    return [fence_from_spec(str(r[0]), str(r[1]), json.loads(r[2])) for r in rows]


async def fence_sources(db: aiosqlite.Connection, site: str) -> dict[str, str]:
    """Fence name -> where it came from (``local`` or ``backend``)."""
    async with db.execute("SELECT name, source FROM geofences WHERE site = ?", (site,)) as cur:
        return {str(r[0]): str(r[1]) async for r in cur}


async def recent_fixes(
    db: aiosqlite.Connection, since_ms: int, keyring: Keyring | None = None
) -> dict[str, Fix]:
    """Each person's latest fix among accepted punches since ``since_ms`` (device time)."""
    out: dict[str, Fix] = {}
    async with db.execute(
        "SELECT person_id, device_ts_ms, body, device_id, msg_id, key_id, sealed"
        " FROM records WHERE kind = 'punch'"
        " AND status = 'accepted' AND person_id IS NOT NULL AND device_ts_ms >= ?"
        " ORDER BY device_ts_ms",
        (since_ms,),
    ) as cur:
        async for person_id, ts, clear, device_id, msg_id, kid, sealed in cur:
            _, body = open_record(keyring, device_id, msg_id, kid, sealed, None, clear)
            gps = body.get("gps")
            if not isinstance(gps, dict) or "lat" not in gps or "lon" not in gps:
                continue
            acc = gps.get("acc")
            out[str(person_id)] = Fix(
                gps["lat"] / 1e7,
                gps["lon"] / 1e7,
                float(acc) if isinstance(acc, int) else None,
                int(gps["ts"]) if isinstance(gps.get("ts"), int) else int(ts),
            )
    return out


async def _bump(db: aiosqlite.Connection) -> None:
    await bump_version(db, GEOFENCES_VERSION_KEY)
