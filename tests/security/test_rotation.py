"""`tack keys rotate`: while the gateway ingests, after an interruption, and on the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.protocol import AckStatus
from gateway.audit import AuditLog
from gateway.cli import app
from gateway.security.keyring import Keyring, keyring_for
from gateway.security.rotation import rotate
from gateway.store import open_database
from tests.fixtures.gateway import RawDevice, count_records
from tests.security.helpers import CARD, fill_store, key_ids, read_punches, settings_in


class SimulatedCrashError(Exception):
    pass


async def _send_and_ack(dev: RawDevice, n: int, gap_s: float) -> list[str]:
    sent: list[str] = []
    for _ in range(n):
        env = dev.envelope()
        await asyncio.to_thread(dev.send, env)
        sent.append(env["id"])
        await asyncio.sleep(gap_s)
    for _ in range(n):
        assert (await dev.next_ack()).status == AckStatus.ACCEPTED
    return sent


async def test_rotation_while_the_gateway_ingests_loses_nothing_and_retires_the_old_key(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    before = await _send_and_ack(dev, 100, 0)
    old = keyring_for(gw.settings).current_id

    sending = asyncio.create_task(_send_and_ack(dev, 150, 0.02))
    report = await rotate(gw.settings, actor="cli:test", batch_rows=20)
    during = await sending

    sent = before + during
    assert count_records(gw.settings.db_path) == len(sent)
    punches = read_punches(gw.settings)
    assert sorted(punches) == sorted(sent)
    assert {cred for cred, _ in punches.values()} == {"C0001"}
    assert report.old_keys == [old]
    assert report.retired == [old]
    assert key_ids(gw.settings.db_path) == {report.new_key}
    # The running gateway went over to the new key by itself, and seals with it now.
    after = await _send_and_ack(dev, 5, 0)
    assert key_ids(gw.settings.db_path) == {report.new_key}
    assert all(read_punches(gw.settings)[m][0] == "C0001" for m in after)
    ring = Keyring.load(gw.settings.keyring_file)
    assert [e.key_id for e in ring.entries() if e.retired] == [old]


async def test_an_interrupted_rotation_is_finished_by_running_it_again(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await fill_store(settings, records=60)
    old = keyring_for(settings).current_id

    def crash_midway(table: str, done: int, _total: int) -> None:
        if table == "records" and done >= 20:
            raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):
        await rotate(settings, actor="cli:test", progress=crash_midway, batch_rows=10)
    half = Keyring.load(settings.keyring_file)
    assert half.active_old_ids() == [old]
    assert old in key_ids(settings.db_path)
    assert len(key_ids(settings.db_path)) == 2  # part sealed again, part not
    assert all(cred == CARD for cred, _ in read_punches(settings).values())

    report = await rotate(settings, actor="cli:test", batch_rows=10)
    assert report.resumed
    assert report.new_key == half.current_id  # the same rotation, not a new key
    assert report.retired == [old]
    assert key_ids(settings.db_path) == {report.new_key}
    assert all(cred == CARD for cred, _ in read_punches(settings).values())
    db = await open_database(settings.db_path)
    try:
        done = await AuditLog(db, settings.audit_head_file).entries(action="keys.rotate")
    finally:
        await db.close()
    assert len(done) == 1
    assert done[0].detail["retired"] == [old]
    assert done[0].detail["resumed"] is True


def test_keys_status_and_rotate_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_in(tmp_path)
    asyncio.run(fill_store(settings, records=3))
    monkeypatch.setenv("TACK_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    status = runner.invoke(app, ["keys", "status"])
    assert status.exit_code == 0, status.output
    old = keyring_for(settings).current_id
    assert old[:12] in status.output
    assert "current" in status.output

    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert f"retired {old}" in rotated.output
    again = runner.invoke(app, ["keys", "status"])
    assert "retired" in again.output
