"""The gateway runs the scheduled backup and the retention purge by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditLog
from gateway.security import schedule
from gateway.security.backup import list_backups
from gateway.security.retention import DAY_MS
from gateway.store import open_database
from gateway.store.records import SyncState, now_ms
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import count_records, gateway_settings
from tests.security.helpers import punch, write_records


async def test_a_running_gateway_backs_up_and_purges_on_its_own(
    gateway_factory: Callable[..., Any],
    tmp_path: Path,
    mosquitto: Mosquitto,
    site: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule, "FIRST_BACKUP_DELAY_S", 0.0)
    options: dict[str, Any] = {
        "backup": {"interval_h": 24, "keep": 3},
        "retention": {"records_days": 30},
    }
    old = now_ms() - 40 * DAY_MS
    await write_records(
        gateway_settings(tmp_path, mosquitto, site, **options),
        [
            punch(1, sync_state=SyncState.SYNCED, received_ts_ms=old),
            punch(2, sync_state=SyncState.PENDING, received_ts_ms=old),
        ],
    )
    gw = await gateway_factory(devices=["term-001"], **options)
    for _ in range(600):  # up to 30 s on a loaded machine; usually well under one
        if list_backups(gw.settings) and count_records(gw.settings.db_path) == 1:
            break
        await asyncio.sleep(0.05)
    [backup] = list_backups(gw.settings)
    assert count_records(gw.settings.db_path, sync_state=SyncState.PENDING) == 1
    db = await open_database(gw.settings.db_path)
    try:
        log = AuditLog(db, gw.settings.audit_head_file)
        made = await log.entries(action="backup.create", actor="gateway")
        purged = await log.entries(action="retention.purge", actor="gateway")
    finally:
        await db.close()
    assert [e.target for e in made] == [backup.path.name]
    assert purged[0].detail["records"] == 1
