"""People who left: noticing them, and what happens to their biometric data.

A full roster pass notes in each person's row that it listed them (``seen_pass``); whoever it
did not list was removed at the backend. A person who left keeps their roster row
(``active = 0``) so their old records still resolve to a name, but the gateway keeps no
biometric data of them: every face template is deleted, whatever its source (the backend's
photo or ``tack faces enroll``). The rows go without the template key, so this works on a
gateway where the ``face`` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Collection

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.roster import ROSTER_VERSION_KEY, bump_version

# The key gateway.verify.face.templates bumps on every change, so face verifiers reload their
# gallery; named here because that module needs the `face` extra to import.
TEMPLATES_VERSION_KEY = "face.templates.version"
# Per person, the bridge's JSON note {url, sha256, status: enrolled|refused, reason, ts_ms} of the
# last photo it dealt with, so a photo is downloaded and encoded once per change of its URL.
PHOTO_KEY_PREFIX = "bridge.photo."


async def forget_biometrics(db: aiosqlite.Connection, person_ids: Collection[str]) -> int:
    """Delete every face template of ``person_ids`` and the bridge's photo notes; returns how
    many templates went."""
    if not person_ids:
        return 0
    async with write_transaction(db, f"deleting the face templates of {len(person_ids)} people"):
        return await _delete_biometrics(db, person_ids)


async def mark_listed(db: aiosqlite.Connection, pass_id: int, person_ids: Collection[str]) -> None:
    """Note that full roster pass ``pass_id`` listed ``person_ids``."""
    async with write_transaction(db, "noting who the roster pass listed"):
        await db.executemany(
            "UPDATE people SET seen_pass = ? WHERE person_id = ?",
            [(pass_id, p) for p in person_ids],
        )


async def deactivate_missing(db: aiosqlite.Connection, pass_id: int) -> tuple[list[str], int]:
    """People still active whom full roster pass ``pass_id`` did not list (removed at the
    backend) become inactive and lose their face templates, in one transaction; returns their
    ids and how many templates went. Bumps the roster version so gateways reload."""
    async with write_transaction(db, "deactivating people the backend no longer lists"):
        async with db.execute(
            "SELECT person_id FROM people WHERE active = 1 AND seen_pass != ?", (pass_id,)
        ) as cur:
            gone = [str(r[0]) async for r in cur]
        if not gone:
            return [], 0
        await db.executemany(
            "UPDATE people SET active = 0 WHERE person_id = ?", [(p,) for p in gone]
        )
        await bump_version(db, ROSTER_VERSION_KEY)
        return gone, await _delete_biometrics(db, gone)


async def _delete_biometrics(db: aiosqlite.Connection, person_ids: Collection[str]) -> int:
    before = db.total_changes
    ids = [(p,) for p in person_ids]
    await db.executemany("DELETE FROM face_templates WHERE person_id = ?", ids)
    removed = db.total_changes - before
    await db.executemany(
        "DELETE FROM kv WHERE key = ?", [(PHOTO_KEY_PREFIX + p,) for p in person_ids]
    )
    if removed:
        await bump_version(db, TEMPLATES_VERSION_KEY)
    return removed
