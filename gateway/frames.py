"""Camera frames from terminals (``evt/frame``): checked, then stored beside the records.

A frame has no ack of its own (the punch's ack covers it), so whatever happens here the message
is settled: an unreadable frame will not improve by coming again, and a frame that could not
be stored comes again anyway, because the device resends it with its punch until the punch is
acknowledged. The device sends the frame just before the punch; the two are handled
concurrently, so a punch can be committed a moment before its frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiosqlite

from devices.protocol import Frame, ProtocolError, ReasonCode, Topic, decode_frame
from gateway.metrics import GatewayMetrics
from gateway.registry import DeviceRegistry
from gateway.security.keyring import Keyring
from gateway.store.errors import StoreError
from gateway.store.frames import store_frame
from gateway.transport import Inbound

log = logging.getLogger(__name__)


class FrameReceiver:
    def __init__(
        self,
        db: aiosqlite.Connection,
        registry: DeviceRegistry,
        metrics: GatewayMetrics,
        on_frame: Callable[[Frame], None] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._registry = registry
        self._metrics = metrics
        self._on_frame = on_frame

    async def handle(self, msg: Inbound, where: Topic) -> bool:
        ctx = {"site": where.site, "device_id": where.device_id}
        try:
            frame = decode_frame(where, msg.payload)
        except ProtocolError as exc:
            self._metrics.invalid.labels(exc.reason_code).inc()
            log.warning("ignored bad camera frame: %s", exc.message, extra=ctx)
            return True
        ctx["msg_id"] = frame.msg_id
        device = await self._registry.lookup(where.device_id)
        if device is None or device.revoked:
            reason = ReasonCode.UNKNOWN_DEVICE if device is None else ReasonCode.DEVICE_REVOKED
            self._metrics.invalid.labels(reason).inc()
            log.warning("ignored camera frame: %s", reason, extra=ctx)
            return True
        if self._on_frame is not None:
            self._on_frame(frame)  # the face check starts now, in parallel with the commit
        try:
            stored = await store_frame(self._db, frame, self._keyring)
        except StoreError as exc:
            log.error("could not store a camera frame: %s", exc.message, extra=ctx)
            return True
        if stored:
            self._metrics.frames.inc()
        what = "stored" if stored else "repeated"
        log.debug("frame of %d bytes %s", len(frame.data), what, extra=ctx)
        return True
