"""Geofences in the store, one set per site, and the last fixes the speed check starts from.

The bridge (or ``tack geofences load``) replaces a site's fences as a whole, like the roster:
what the backend or the file says is the truth, and a re-load repairs any drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.verify.geo.check import Fix
from gateway.verify.geo.fence import Geofence, fence_from_spec

GEOFENCES_VERSION_KEY = "geofences.version"


async def replace_fences(db: aiosqlite.Connection, site: str, fences: Iterable[Geofence]) -> int:
    """The site's fences become exactly ``fences``; bumps ``geofences.version``."""
    rows = [(site, f.name, f.kind, json.dumps(f.spec()), now_ms()) for f in fences]
    async with write_transaction(db, f"saving the geofences of site {site}"):
        await db.execute("DELETE FROM geofences WHERE site = ?", (site,))
        await db.executemany(
            "INSERT INTO geofences (site, name, kind, spec, updated_ts_ms) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        await _bump(db)
    return len(rows)


async def upsert_fence(db: aiosqlite.Connection, site: str, fence: Geofence) -> None:
    async with write_transaction(db, f"saving geofence {fence.name}"):
        await db.execute(
            "INSERT INTO geofences (site, name, kind, spec, updated_ts_ms) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (site, name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec,"
            " updated_ts_ms = excluded.updated_ts_ms",
            (site, fence.name, fence.kind, json.dumps(fence.spec()), now_ms()),
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


async def recent_fixes(db: aiosqlite.Connection, since_ms: int) -> dict[str, Fix]:
    """Each person's latest fix among accepted punches since ``since_ms`` (device time)."""
    out: dict[str, Fix] = {}
    async with db.execute(
        "SELECT person_id, device_ts_ms, body FROM records WHERE kind = 'punch'"
        " AND status = 'accepted' AND person_id IS NOT NULL AND device_ts_ms >= ?"
        " ORDER BY device_ts_ms",
        (since_ms,),
    ) as cur:
        async for person_id, ts, body in cur:
            gps = json.loads(body).get("gps")
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
    await db.execute(
        "INSERT INTO kv (key, value) VALUES (?, '1') ON CONFLICT (key)"
        " DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (GEOFENCES_VERSION_KEY,),
    )
