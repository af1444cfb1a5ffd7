"""Per-device MQTT credentials, kept as Mosquitto hashes in the store.

The store is the source of truth and the broker's password file a copy of it: ``issue`` and
``revoke`` change the store (inside the caller's transaction when there is one, so an admin
action and its audit entry commit together), ``apply`` writes the copy and asks the running
broker to re-read it. A clear password exists only in the return value of ``issue``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from gateway.broker.acl import render_acl
from gateway.broker.files import write_atomic
from gateway.broker.passwords import hash_password, new_password, render_password_file
from gateway.config import TackSettings
from gateway.store.database import joined_transaction
from gateway.store.devices import get_device
from gateway.store.errors import StoreError
from gateway.store.records import now_ms

log = logging.getLogger(__name__)

DEVICE = "device"
GATEWAY = "gateway"
PASSWORD_FILE = "passwords"
LOCK_FILE = ".tack-apply.lock"
ACL_FILE = "acl"
# In the persistence folder: the one place the broker may write after dropping root.
PID_FILE = "data/mosquitto.pid"
# Mosquitto reads these as the user it runs as (group `mosquitto` on Debian): owner and
# group may read, nobody else.
FILE_MODE = 0o640


class CredentialsError(StoreError):
    """A credential cannot be issued; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    written: bool
    reloaded_pid: int | None = None
    reload_problem: str | None = None


def gateway_username(settings: TackSettings) -> str:
    """The gateway's broker account: ``mqtt.username``, else ``tack-gateway-{site}``."""
    return settings.mqtt.username or f"tack-gateway-{settings.site}"


async def issue(db: aiosqlite.Connection, device_id: str) -> str:
    """Create or replace ``device_id``'s MQTT password and return it; it is not kept anywhere."""
    device = await get_device(db, device_id)
    if device is None:
        raise CredentialsError(
            f"no device {device_id!r}: register it first (`tack devices add {device_id}`)"
        )
    if device.revoked:
        raise CredentialsError(
            f"device {device_id!r} is revoked and a revoked device keeps its id; register the "
            "replacement under a new id (`tack devices add NEW-ID`)"
        )
    if await _role(db, device_id) == GATEWAY:
        raise CredentialsError(
            f"{device_id!r} is the gateway's broker account; give the device another id"
        )
    return await _store(db, device_id, DEVICE)


async def issue_gateway(db: aiosqlite.Connection, username: str) -> str:
    """Create or replace the gateway's own broker password and return it."""
    if await _role(db, username) == DEVICE or await get_device(db, username) is not None:
        raise CredentialsError(
            f"{username!r} is a device id; set mqtt.username to another name for the gateway"
        )
    return await _store(db, username, GATEWAY)


async def has_credentials(db: aiosqlite.Connection, username: str) -> bool:
    return await _role(db, username) is not None


async def revoke(db: aiosqlite.Connection, device_id: str) -> None:
    """Forget ``device_id``'s credentials; after ``apply`` the broker refuses it at connect."""
    await _execute(
        db,
        f"revoking the credentials of {device_id}",
        "DELETE FROM mqtt_credentials WHERE username = ? AND role = ?",
        (device_id, DEVICE),
    )


async def apply(db: aiosqlite.Connection, settings: TackSettings) -> bool:
    """Write the broker's password and ACL files from the store and have the broker reload them;
    whether anything was written. A broker that cannot be signalled is logged, not raised: the
    files are right and take effect at its next start or reload."""
    result = await apply_files(db, settings)
    if result.reload_problem:
        log.warning("%s", result.reload_problem)
    return result.written


async def apply_files(db: aiosqlite.Connection, settings: TackSettings) -> ApplyResult:
    """:func:`apply`, telling the caller whether and how the broker was reloaded."""
    config_dir = settings.broker.config_dir
    if config_dir is None:
        return ApplyResult(written=False)
    acl = render_acl(settings.site, gateway_username(settings))
    pid_file = settings.broker.pid_file or config_dir / PID_FILE
    # The CLI and the gateway's admin app may apply at the same moment: one at a time, each
    # reading the store afresh, so an older view never overwrites a newer one.
    async with _folder_lock(config_dir):
        # Credentials of devices revoked or deleted behind our back are left out too.
        async with db.execute(
            "SELECT c.username, c.password_hash FROM mqtt_credentials c"
            " LEFT JOIN devices d ON d.device_id = c.username"
            " WHERE c.role = ? OR (c.role = ? AND d.revoked = 0)",
            (GATEWAY, DEVICE),
        ) as cur:
            entries = {str(r[0]): str(r[1]) for r in await cur.fetchall()}
        return await asyncio.to_thread(_write_and_reload, config_dir, entries, acl, pid_file)


@contextlib.asynccontextmanager
async def _folder_lock(config_dir: Path) -> AsyncIterator[None]:
    try:
        fd = os.open(config_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        raise CredentialsError(
            f"broker.config_dir {config_dir} does not exist; create it with "
            f"`tack broker config --out {config_dir}` or fix the option"
        ) from None
    except OSError as exc:
        raise CredentialsError(
            f"cannot write the broker's files in {config_dir} ({exc.strerror}); run as a user "
            "who may write there, or fix broker.config_dir"
        ) from exc
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_and_reload(
    config_dir: Path, entries: dict[str, str], acl: str, pid_file: Path
) -> ApplyResult:
    try:
        changed = write_atomic(config_dir / PASSWORD_FILE, render_password_file(entries), FILE_MODE)
        changed |= write_atomic(config_dir / ACL_FILE, acl, FILE_MODE)
    except OSError as exc:
        raise CredentialsError(
            f"cannot write the broker's files in {config_dir} ({exc.strerror}); run as a user "
            "who may write there, or fix broker.config_dir"
        ) from exc
    if not changed:
        return ApplyResult(written=False)
    pid, problem = _reload(pid_file)
    return ApplyResult(written=True, reloaded_pid=pid, reload_problem=problem)


def _reload(pid_file: Path) -> tuple[int | None, str | None]:
    """SIGHUP makes Mosquitto re-read its password and ACL files without dropping anyone."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None, None  # no broker running from this folder: it reads the files when started
    except (OSError, ValueError) as exc:
        return None, f"cannot read the broker's pid from {pid_file} ({exc}); reload it by hand"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None, None  # a stale pid file of a broker that has stopped
    except PermissionError:
        return None, (
            f"not allowed to signal the broker (pid {pid}); reload it with "
            f"`sudo kill -HUP {pid}` or `sudo systemctl reload mosquitto`"
        )
    return pid, None


async def _role(db: aiosqlite.Connection, username: str) -> str | None:
    async with db.execute(
        "SELECT role FROM mqtt_credentials WHERE username = ?", (username,)
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def _store(db: aiosqlite.Connection, username: str, role: str) -> str:
    password = new_password()
    await _execute(
        db,
        f"issuing credentials for {username}",
        "INSERT OR REPLACE INTO mqtt_credentials (username, role, password_hash, created_ts_ms)"
        " VALUES (?, ?, ?, ?)",
        (username, role, hash_password(password), now_ms()),
    )
    return password


async def _execute(
    db: aiosqlite.Connection, action: str, sql: str, params: tuple[object, ...]
) -> None:
    async with joined_transaction(db, action):
        await db.execute(sql, params)
