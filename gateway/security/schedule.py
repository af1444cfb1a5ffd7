"""The gateway's own data-protection jobs: scheduled backups with pruning, and the daily purge.

Both run as tasks of the gateway (gateway/service.py) with the actor ``gateway``. A backup is
due ``backup.interval_h`` after the newest one in ``backup.dir``, so restarting the gateway
neither skips one nor makes an extra one; with none there yet, the first is made
:data:`FIRST_BACKUP_DELAY_S` after the start (a gateway started for a moment, as in a test or a
demo, leaves no backups behind). A failed job is logged and tried again later; it
never stops the gateway.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.config import TackSettings
from gateway.security.backup import create_backup, list_backups, prune_backups
from gateway.security.retention import purge
from gateway.store.records import now_ms

log = logging.getLogger(__name__)

ACTOR = "gateway"
PURGE_EVERY_S = 86_400.0
RETRY_S = 600.0  # after a failed job
FIRST_BACKUP_DELAY_S = 600.0


def backup_due_in_s(settings: TackSettings, at_ms: int, started_ms: int) -> float:
    """Seconds until the next scheduled backup (0 when one is due now)."""
    newest = list_backups(settings)
    if not newest:
        return max(0.0, (started_ms - at_ms) / 1000 + FIRST_BACKUP_DELAY_S)
    due = newest[0].created_ms + settings.backup.interval_h * 3_600_000
    return max(0.0, (due - at_ms) / 1000)


async def run_scheduled_backup(settings: TackSettings) -> None:
    info = await create_backup(settings, actor=ACTOR)
    pruned = await prune_backups(settings, actor=ACTOR)
    log.info("scheduled backup %s written; %d old backup(s) pruned", info.path.name, len(pruned))


async def backup_loop(settings: TackSettings) -> None:
    started = now_ms()
    while True:
        wait = await asyncio.to_thread(backup_due_in_s, settings, now_ms(), started)
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        try:
            await run_scheduled_backup(settings)
        except Exception:
            log.exception("scheduled backup failed; trying again in %.0f s", RETRY_S)
            await asyncio.sleep(RETRY_S)


async def retention_loop(settings: TackSettings) -> None:
    while True:
        try:
            result = await purge(settings, actor=ACTOR)
            log.info("retention purge: %d record(s), %d frame(s)", result.records, result.frames)
            await asyncio.sleep(PURGE_EVERY_S)
        except Exception:
            log.exception("retention purge failed; trying again in %.0f s", RETRY_S)
            await asyncio.sleep(RETRY_S)
