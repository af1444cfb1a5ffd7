"""Device life-cycle steps that touch the broker, each committed with its audit entry.

The registry row, the credential and the audit entry change in one transaction; the broker's
files are written after the commit (``apply``), so a broker that cannot be updated at that
moment never leaves the store half-changed: it gets the change at its next reload.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from gateway.audit import AuditLog
from gateway.broker import credentials
from gateway.broker.mosquitto_conf import BrokerInfo
from gateway.config import TackSettings
from gateway.store.devices import Device, DeviceExistsError, add_device, get_device, revoke_device
from gateway.store.errors import StoreError


class NoSuchDeviceError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a device connects: what to put in its configuration beside its credentials."""

    host: str
    port: int
    tls: bool
    ca_file: str | None


@dataclass(frozen=True, slots=True)
class Provisioned:
    device: Device
    password: str | None  # None: registered without credentials


def device_endpoint(settings: TackSettings) -> Endpoint:
    """The broker as ``tack broker config`` recorded it, else as the gateway reaches it."""
    if settings.broker.config_dir is not None:
        info = BrokerInfo.load(settings.broker.config_dir)
        if info is not None:
            return Endpoint(info.host, info.port, True, info.ca_file)
    ca = settings.mqtt.ca_file
    return Endpoint(
        settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls, str(ca) if ca else None
    )


async def add(
    db: aiosqlite.Connection,
    audit: AuditLog,
    actor: str,
    device: Device,
    *,
    with_credentials: bool,
) -> Provisioned:
    async with audit.recording(
        actor,
        "device.add",
        device.device_id,
        {"type": str(device.device_type), "room": device.room_id, "credentials": with_credentials},
    ):
        if await get_device(db, device.device_id) is not None:
            raise DeviceExistsError(
                f"device {device.device_id!r} is already registered (a revoked device keeps its "
                "id); pick another id"
            )
        await add_device(db, device)
        password = await credentials.issue(db, device.device_id) if with_credentials else None
    return Provisioned(device, password)


async def revoke(db: aiosqlite.Connection, audit: AuditLog, actor: str, device_id: str) -> None:
    async with audit.recording(actor, "device.revoke", device_id):
        if not await revoke_device(db, device_id):
            raise NoSuchDeviceError(f"no device {device_id!r}; see `tack devices list`")
        await credentials.revoke(db, device_id)


async def reset(
    db: aiosqlite.Connection, audit: AuditLog, actor: str, device_id: str
) -> Provisioned:
    """New credentials for ``device_id``; the old password stops working at the broker's reload."""
    async with audit.recording(actor, "device.credentials_reset", device_id):
        device = await get_device(db, device_id)
        if device is None:
            raise NoSuchDeviceError(f"no device {device_id!r}; see `tack devices list`")
        return Provisioned(device, await credentials.issue(db, device_id))
