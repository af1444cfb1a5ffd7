"""Presence from retained ``state/online`` messages and last wills.

A device announces ``online`` with its boot counter on connect; the broker publishes its last
will (``online: false`` with the same counter) when the connection dies. A will that arrives
late, after the device already announced a newer boot, is stale and ignored, so a device that
reconnected quickly is never shown offline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiosqlite

from devices.protocol import ProtocolError, ReasonCode, Topic, decode_presence
from gateway.metrics import GatewayMetrics
from gateway.registry import DeviceRegistry
from gateway.store.devices import record_presence
from gateway.store.errors import StoreError
from gateway.transport import Inbound

log = logging.getLogger(__name__)


class PresenceTracker:
    def __init__(
        self,
        db: aiosqlite.Connection,
        registry: DeviceRegistry,
        metrics: GatewayMetrics,
        on_birth: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._metrics = metrics
        self._on_birth = on_birth

    async def handle(self, msg: Inbound, where: Topic) -> bool:
        """Settles bad and stale presence too: they will not improve by coming again."""
        ctx = {"site": where.site, "device_id": where.device_id}
        try:
            await self._apply(msg, where, ctx)
        except Exception:
            log.exception("unexpected error while handling presence", extra=ctx)
            return False
        return True

    async def _apply(self, msg: Inbound, where: Topic, ctx: dict[str, str]) -> None:
        if where.name != "online":
            return
        try:
            presence = decode_presence(msg.payload)
        except ProtocolError as exc:
            self._metrics.invalid.labels(exc.reason_code).inc()
            log.warning("ignored bad presence: %s", exc.message, extra=ctx)
            return
        device = await self._registry.lookup(where.device_id)
        if device is None:
            self._metrics.invalid.labels(ReasonCode.UNKNOWN_DEVICE).inc()
            log.info("presence from an unregistered device ignored", extra=ctx)
            return
        if presence.online and self._on_birth is not None:
            # Every birth, applied or not: a device that reconnected within one boot also
            # wants the time.
            self._on_birth(where.device_id)
        try:
            applied = await record_presence(
                self._db, where.device_id, presence.online, presence.boot, presence.firmware
            )
        except StoreError as exc:
            log.error("could not record presence: %s", exc.message, extra=ctx)
            return
        if applied:
            log.info(
                "device %s (boot %d)",
                "online" if presence.online else "offline",
                presence.boot,
                extra=ctx,
            )
            await self.refresh_gauge()
        else:
            log.info("stale presence from boot %d ignored", presence.boot, extra=ctx)

    async def refresh_gauge(self) -> None:
        async with self._db.execute("SELECT count(*) FROM presence WHERE online = 1") as cur:
            row = await cur.fetchone()
        self._metrics.devices_online.set(int(row[0]) if row else 0)
