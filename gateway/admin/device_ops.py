"""Adding and revoking a device from the admin app: the registry row, its MQTT credentials and
the audit entry commit together (the broker module joins the caller's transaction); then the
broker's password file is rewritten and the broker reloaded (gateway/broker/credentials.py)."""

from __future__ import annotations

import logging

from gateway.admin.context import AdminContext
from gateway.admin.errors import ApiError
from gateway.broker import credentials
from gateway.store.devices import DeviceType, get_device
from gateway.store.records import now_ms

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
    db = ctx.db
    async with ctx.audit.recording(
        actor, "device.add", device_id, {"type": str(device_type), "room": room_id}
    ):
        if await get_device(db, device_id) is not None:
            raise ApiError(
                409,
                "device_exists",
                f"device {device_id!r} is already registered; pick another id (a revoked "
                "device keeps its id)",
            )
        await db.execute(
            "INSERT INTO devices (device_id, site, device_type, name, revoked, created_ts_ms,"
            " room_id) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (device_id, ctx.settings.site, str(device_type), name, now_ms(), room_id),
        )
        password = await credentials.issue(db, device_id)
    await _apply(ctx)
    return password


async def revoke_device(ctx: AdminContext, actor: str, device_id: str) -> None:
    db = ctx.db
    async with ctx.audit.recording(actor, "device.revoke", device_id):
        device = await get_device(db, device_id)
        if device is None:
            raise ApiError(404, "no_such_device", f"no device {device_id!r}; see the device list")
        if device.revoked:
            raise ApiError(409, "already_revoked", f"device {device_id!r} is revoked already")
        await db.execute("UPDATE devices SET revoked = 1 WHERE device_id = ?", (device_id,))
        await credentials.revoke(db, device_id)
    await _apply(ctx)


async def _apply(ctx: AdminContext) -> None:
    """The change is committed; a broker that cannot take it now is told in the log and gets
    it at its next reload (the store is the source of truth)."""
    await ctx.changed("devices")
    try:
        await credentials.apply(ctx.db, ctx.settings)
    except credentials.CredentialsError as exc:
        log.warning("broker files not updated: %s", exc.message)
