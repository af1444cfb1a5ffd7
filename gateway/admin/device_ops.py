"""Adding and revoking a device from the admin app, through the same steps as ``tack devices``
(:mod:`gateway.broker.provisioning`): the registry row, its MQTT credentials and the audit entry
commit together; then a running gateway reloads its registry, and the broker's password file is
rewritten and the broker reloaded (gateway/broker/credentials.py). What the web adds: errors as
API answers, and a clear 409 for a device revoked already."""

from __future__ import annotations

import logging

from gateway.admin.context import AdminContext
from gateway.admin.errors import ApiError
from gateway.broker import credentials, provisioning
from gateway.store.devices import Device, DeviceExistsError, DeviceType, get_device

log = logging.getLogger(__name__)


async def add_device(
    ctx: AdminContext,
    actor: str,
    device_id: str,
    device_type: DeviceType,
    name: str,
    room_id: str | None,
) -> str:
    """Register the device and return its MQTT password: the only time anyone sees it."""
    device = Device(device_id, ctx.settings.site, device_type, name, room_id=room_id)
    try:
        done = await provisioning.add(ctx.db, ctx.audit, actor, device, with_credentials=True)
    except DeviceExistsError as exc:
        raise ApiError(
            409,
            "device_exists",
            f"device {device_id!r} is already registered; pick another id (a revoked "
            "device keeps its id)",
        ) from exc
    await _apply(ctx)
    assert done.password is not None  # with_credentials=True
    return done.password


async def revoke_device(ctx: AdminContext, actor: str, device_id: str) -> None:
    device = await get_device(ctx.db, device_id)
    if device is not None and device.revoked:
        raise ApiError(409, "already_revoked", f"device {device_id!r} is revoked already")
    try:
        await provisioning.revoke(ctx.db, ctx.audit, actor, device_id)
    except provisioning.NoSuchDeviceError as exc:
        raise ApiError(
            404, "no_such_device", f"no device {device_id!r}; see the device list"
        ) from exc
    await _apply(ctx)


async def _apply(ctx: AdminContext) -> None:
    """The change is committed; a broker that cannot take it now is told in the log and gets
    it at its next reload (the store is the source of truth)."""
    await ctx.changed("devices")
    try:
        await credentials.apply(ctx.db, ctx.settings)
    except credentials.CredentialsError as exc:
        log.warning("broker files not updated: %s", exc.message)
