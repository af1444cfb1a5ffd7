"""Every change made from the ``tack`` command lands in the audit log, named ``cli:<user>``,
without the secret or personal part (a notice's text, a photo): the commands beyond the
device, account, key and backup ones, which their own tests cover."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit import AuditEntry, AuditLog
from gateway.cli import app
from gateway.config import load_settings
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tack.toml"
    path.write_text(f'site = "hq"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")

    async def seed() -> None:
        db = await open_database(load_settings(path).db_path)
        try:
            await add_device(db, Device("room-1", "hq", DeviceType.MEETING_PANEL))
            await add_device(db, Device("term-1", "hq", DeviceType.CLOCK_TERMINAL))
            await db.execute(
                "INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms,"
                " body, status, reason, verdict, sync_state) VALUES"
                " ('term-1', 'm1', 1, 'punch', 1, 1, '{}', 'accepted', 'ok', '{}', 'failed')"
            )
        finally:
            await db.close()

    asyncio.run(seed())
    return path


def tack(config: Path, *args: str) -> None:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output


def entries(config: Path) -> list[AuditEntry]:
    async def main() -> list[AuditEntry]:
        settings = load_settings(config)
        db = await open_database(settings.db_path)
        try:
            return await AuditLog(db, settings.audit_head_file).entries()
        finally:
            await db.close()

    return asyncio.run(main())


def test_changes_from_the_command_line_are_audited(config: Path) -> None:
    tack(config, "devices", "room", "room-1", "r-5")
    tack(config, "geofences", "add", "hq", "--center", "31.23,121.47", "--radius-m", "200")
    tack(config, "geofences", "remove", "hq")
    tack(config, "notices", "send", "--to", "term-1", "--text", "Fire drill at 3")
    tack(config, "faces", "remove", "u0001")
    tack(config, "records", "--retry-failed")
    got = [(e.actor, e.action, e.target, e.detail) for e in entries(config)]
    me = f"cli:{getpass.getuser()}"
    assert [(a, act) for a, act, _, _ in got] == [
        (me, "device.room"),
        (me, "geofence.save"),
        (me, "geofence.remove"),
        (me, "notice.send"),
        (me, "face.delete"),
        (me, "records.retry_failed"),
    ]
    assert got[0][2:] == ("room-1", {"room": "r-5"})
    assert got[1][2:] == ("hq", {"kind": "circle"})
    notice = got[3]
    assert notice[3] == {"devices": 1, "chars": len("Fire drill at 3")}
    assert "Fire drill" not in str(notice), "the notice's text is not copied into the log"
    assert got[5][3] == {"records": 1}
    result = CliRunner().invoke(app, ["audit", "verify", "--config", str(config)])
    assert result.exit_code == 0, result.output


def test_a_command_that_changes_nothing_records_nothing(config: Path) -> None:
    result = CliRunner().invoke(app, ["geofences", "remove", "nowhere", "--config", str(config)])
    assert result.exit_code != 0
    result = CliRunner().invoke(
        app, ["records", "--retry-failed", "--id", "999", "--config", str(config)]
    )
    assert result.exit_code == 1, result.output  # no such failed record: said, nothing queued
    assert [e.action for e in entries(config)] == []
