"""The credential store and the files it writes, without a running broker: what `issue`,
`revoke` and `apply` promise the admin app and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from gateway.audit import AuditLog
from gateway.broker import credentials
from gateway.config import TackSettings, load_settings
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device, revoke_device


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_database(tmp_path / "tack.db")
    await add_device(conn, Device("dev-a", "hq", DeviceType.CLOCK_TERMINAL))
    await add_device(conn, Device("dev-b", "hq", DeviceType.CLOCK_TERMINAL))
    yield conn
    await conn.close()


def _settings(tmp_path: Path, **broker: object) -> TackSettings:
    return load_settings(None, site="hq", data_dir=str(tmp_path), broker=broker)


async def test_issue_needs_a_registered_device_that_is_not_revoked(
    db: aiosqlite.Connection,
) -> None:
    with pytest.raises(credentials.CredentialsError, match="register it first"):
        await credentials.issue(db, "ghost")
    await revoke_device(db, "dev-b")
    with pytest.raises(credentials.CredentialsError, match="is revoked"):
        await credentials.issue(db, "dev-b")


async def test_issued_passwords_are_long_random_and_never_stored(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    first = await credentials.issue(db, "dev-a")
    second = await credentials.issue(db, "dev-a")
    assert first != second
    assert len(first) >= 22  # 128 bits in URL-safe base64
    assert all(c.isalnum() or c in "-_" for c in first)
    async with db.execute("SELECT password_hash FROM mqtt_credentials") as cur:
        [(stored,)] = await cur.fetchall()
    assert stored.startswith("$7$101$")
    assert first not in stored
    assert second not in stored


async def test_an_issue_inside_an_audited_action_rolls_back_with_it(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    audit = AuditLog(db, tmp_path / "audit.head")

    async def reset_that_fails() -> None:
        async with audit.recording("cli:test", "device.credentials_reset", "dev-a"):
            await credentials.issue(db, "dev-a")
            raise RuntimeError("the action failed after the password was made")

    with pytest.raises(RuntimeError):
        await reset_that_fails()
    assert not await credentials.has_credentials(db, "dev-a")
    async with audit.recording("cli:test", "device.credentials_reset", "dev-a"):
        await credentials.issue(db, "dev-a")
    assert await credentials.has_credentials(db, "dev-a")


async def test_apply_without_a_managed_broker_writes_nothing(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    await credentials.issue(db, "dev-a")
    assert await credentials.apply(db, _settings(tmp_path)) is False


async def test_apply_writes_only_live_credentials_and_only_when_they_changed(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    settings = _settings(tmp_path, config_dir=str(broker_dir))
    await credentials.issue(db, "dev-a")
    await credentials.issue(db, "dev-b")
    assert await credentials.apply(db, settings) is True
    assert await credentials.apply(db, settings) is False  # nothing new: no rewrite, no reload
    users = _users(broker_dir / "passwords")
    assert users == ["dev-a", "dev-b"]
    # A device revoked some other way (the registry only) loses broker access all the same.
    await revoke_device(db, "dev-b")
    assert await credentials.apply(db, settings) is True
    assert _users(broker_dir / "passwords") == ["dev-a"]
    await credentials.revoke(db, "dev-a")
    assert await credentials.apply(db, settings) is True
    assert _users(broker_dir / "passwords") == []
    assert "user tack-gateway-hq\n" in (broker_dir / "acl").read_text()


async def test_apply_signals_the_broker_named_in_the_pid_file(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    broker_dir = tmp_path / "broker"
    (broker_dir / "data").mkdir(parents=True)
    # A stand-in process that reports the SIGHUP it gets.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import signal,sys,time\n"
        "signal.signal(signal.SIGHUP, lambda *a: (print('HUP', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        (broker_dir / "data" / "mosquitto.pid").write_text(f"{proc.pid}\n")
        await credentials.issue(db, "dev-a")
        result = await credentials.apply_files(db, _settings(tmp_path, config_dir=str(broker_dir)))
        assert (result.written, result.reloaded_pid, result.reload_problem) == (
            True,
            proc.pid,
            None,
        )
        assert await proc.stdout.readline() == b"HUP\n"
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()


async def test_a_missing_config_dir_is_reported_with_the_fix(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, config_dir=str(tmp_path / "nowhere"))
    with pytest.raises(credentials.CredentialsError, match="tack broker config --out"):
        await credentials.apply(db, settings)


def _users(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines()]
