"""The gateway service: wires transport, registry, verifier, store and bridge together.

``async with Gateway(settings) as gw:`` starts everything and ``stop()`` (or leaving the block)
shuts it down in the safe order: stop taking messages, finish the ones in hand, then close the
store. Messages not settled by then stay with the broker and come again on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from devices.protocol import TopicKind, encode_time, topic
from gateway.config import TackSettings
from gateway.frames import FrameReceiver
from gateway.ingest import Ingest, route
from gateway.metrics import GatewayMetrics, LatencySummary
from gateway.notices.service import NoticeService
from gateway.presence import PresenceTracker
from gateway.registry import DeviceRegistry
from gateway.rooms import RoomService, caldav_source
from gateway.security import schedule
from gateway.security.keyring import keyring_for
from gateway.security.store_lock import SharedStoreLock
from gateway.sitetime import zone_at
from gateway.store import open_database
from gateway.store.records import RecordWriter, now_ms
from gateway.transport import Inbound
from gateway.transport.mqtt import MqttTransport
from gateway.verify.attendance import AttendanceVerifier

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0  # on shutdown, how long messages in hand may take to finish
TIME_RESYNC_S = 6 * 3600  # cmd/time again to devices online (their next DST change, drift)


@dataclass(frozen=True, slots=True)
class GatewaySnapshot:
    committed: int
    duplicates: int
    invalid: int
    in_flight: int
    commits: int
    latency: LatencySummary
    connected: bool


class Gateway:
    def __init__(
        self,
        settings: TackSettings,
        *,
        run_bridge: bool | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        """``clock`` (UTC ms) drives the room service, so tests can run a day of bookings."""
        self.settings = settings
        self._clock = clock
        self.metrics = GatewayMetrics()
        self._run_bridge = settings.bridge.enabled if run_bridge is None else run_bridge
        self._stack = contextlib.AsyncExitStack()
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bridge: Any = None

    async def __aenter__(self) -> Gateway:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    async def _start(self) -> None:
        s = self.settings
        stack = self._stack
        # Held while the gateway runs, so `tack backup restore` refuses to swap the store.
        stack.callback(SharedStoreLock(s.db_path).release)
        self.keyring = keyring_for(s)
        self.db = await self._open()
        stack.push_async_callback(self.db.close)
        # A second connection for reads and presence, so they never land inside a group commit.
        self.aux = await self._open()
        stack.push_async_callback(self.aux.close)

        self.registry = DeviceRegistry(self.aux, s.registry.refresh_s)
        await self.registry.reload()
        self.verifier = await AttendanceVerifier.open(self.aux, s)
        stack.push_async_callback(self.verifier.close)
        self.writer = await stack.enter_async_context(
            RecordWriter(
                self.db,
                max_batch=s.store.max_batch,
                max_pending=s.store.max_pending,
                on_commit=self._observe_commit,
                on_records=self.verifier.recent.committed,
                keyring=self.keyring,
            )
        )
        self.metrics.pending.set_function(lambda: self.writer.pending)
        if self._run_bridge:
            from cloud_bridge.runner import Bridge

            self.bridge = await stack.enter_async_context(
                Bridge(s, metrics_registry=self.metrics.registry)
            )
        self._zone = ZoneInfo(s.attendance.timezone)
        self.rooms = RoomService(
            self.aux,
            s.rooms,
            self._zone,
            clock=self._clock,
            publish=self._send_schedule,
        )
        self.presence = PresenceTracker(self.aux, self.registry, self.metrics, self._on_birth)
        self.frames = FrameReceiver(
            self.aux, self.registry, self.metrics, self.verifier.frame_arrived, self.keyring
        )
        await self.presence.refresh_gauge()
        site = s.site
        self.transport = MqttTransport(
            s.mqtt,
            s.mqtt_client_id,
            [f"tack/v1/{site}/+/evt/#", f"tack/v1/{site}/+/state/#"],
            self._on_message,
        )
        self.notices = NoticeService(self.aux, self.transport, site, poll_s=s.registry.refresh_s)
        self.ingest = Ingest(
            site=site,
            transport=self.transport,
            writer=self.writer,
            registry=self.registry,
            verifier=self.verifier,
            metrics=self.metrics,
            busy_retry_s=s.store.busy_retry_s,
            on_commit=self.bridge.wake if self.bridge is not None else None,
            notices=self.notices,
            rooms=self.rooms,
        )
        self._spawn(self._refresh_loop(), "tack.registry.refresh")
        self._spawn(self._time_loop(), "tack.time")
        await stack.enter_async_context(self.transport)
        self._spawn(self._rooms_loop(), "tack.rooms.tick")
        caldav = caldav_source.config_of(s.rooms)
        if caldav is not None:
            self._spawn(self._caldav_loop(caldav), "tack.rooms.caldav")
        self._spawn(self.notices.run(), "tack.notices")
        if s.backup.interval_h > 0:
            self._spawn(schedule.backup_loop(s), "tack.backup")
        if s.retention.records_days or s.retention.face_images_days:
            self._spawn(schedule.retention_loop(s), "tack.retention")
        if s.admin.enabled:
            await self._start_admin()
        log.info(
            "gateway up: site %s, store %s, %d devices, %d people, bridge %s",
            site,
            s.db_path,
            len(self.registry),
            self.verifier.people,
            "on" if self.bridge is not None else "off",
        )

    async def _start_admin(self) -> None:
        """The admin app (docs/admin.md) on this loop, with a store connection of its own so an
        admin's write never lands inside a group commit or a presence update. Stopped before
        the store closes (the exit stack runs last-in first-out)."""
        from gateway.admin.app import create_app
        from gateway.admin.server import AdminServer

        a = self.settings.admin
        self.admin_db = await self._open()
        self._stack.push_async_callback(self.admin_db.close)
        server = AdminServer(create_app(self.settings, self.admin_db, self), a.host, a.port)
        await server.start()
        self._stack.push_async_callback(server.stop)

    async def _open(self) -> aiosqlite.Connection:
        s = self.settings.store
        return await open_database(
            self.settings.db_path, synchronous=s.synchronous, max_size_mb=s.max_size_mb
        )

    def _observe_commit(self, batch_size: int) -> None:
        self.metrics.commits.inc()
        self.metrics.batch_size.observe(batch_size)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_message(self, msg: Inbound) -> bool:
        """The transport's handler: route by topic kind; ``True`` settles the message."""
        where = route(msg)
        if where is None:
            self.metrics.invalid.labels("bad_topic").inc()
            return True  # a bad topic stays bad: settle, do not let it come back
        self.metrics.count_message(where.kind)
        if where.kind is TopicKind.EVT:
            if where.name == "frame":
                return await self.frames.handle(msg, where)
            return await self.ingest.handle(msg, where)
        if where.kind is TopicKind.STATE:
            return await self.presence.handle(msg, where)
        return True

    def _on_birth(self, device_id: str) -> None:
        self._send_time(device_id)
        self._spawn(self.rooms.on_birth(device_id), f"tack.rooms.birth[{device_id}]")
        self.notices.on_birth(device_id)

    def _send_schedule(self, device_id: str, payload: bytes) -> bool:
        """Retained, QoS 1: a panel that connects later, or comes back from being offline,
        gets its room's current schedule from the broker at once. ``False`` when the broker is
        away (the message is lost), so the room service sends it again."""
        if not self.transport.connected.is_set():
            return False
        self.transport.publish(
            topic(self.settings.site, device_id, TopicKind.CMD, "schedule"),
            payload,
            retain=True,
            qos=1,
        )
        return True

    async def _rooms_loop(self) -> None:
        while True:
            try:
                await self.rooms.tick()
            except Exception:
                log.exception("room service tick failed; trying again next tick")
            await asyncio.sleep(self.settings.rooms.tick_s)

    async def _caldav_loop(self, cfg: caldav_source.CalDavConfig) -> None:
        zone = ZoneInfo(self.settings.attendance.timezone)
        horizon_ms = self.settings.rooms.horizon_h * 3600 * 1000
        while True:
            try:
                await caldav_source.pull(self.aux, cfg, zone, self._clock(), horizon_ms)
            except caldav_source.CalDavError as exc:
                log.warning("CalDAV pull failed, keeping what was read before: %s", exc)
            except Exception:
                log.exception("CalDAV pull failed unexpectedly; trying again later")
            await asyncio.sleep(caldav_source.PULL_EVERY_S)

    def _send_time(self, device_id: str) -> None:
        """``cmd/time`` to a device that just came online, so its clock follows the gateway's.

        QoS 0 on purpose: a QoS 1 copy would wait in the broker for a device that is away and
        set its clock to a stale time when it comes back.
        """
        now = self._clock()
        tz_min, tz_next = zone_at(self._zone, now)
        self.transport.publish(
            topic(self.settings.site, device_id, TopicKind.CMD, "time"),
            encode_time(now, tz_min=tz_min, tz_next=tz_next),
            qos=0,
        )
        self.metrics.time_syncs.inc()

    async def _time_loop(self) -> None:
        """``cmd/time`` again to every device online, every ``TIME_RESYNC_S``: a device that
        stays connected for months still hears of the next daylight-saving change in time (a
        change is announced ``sitetime.HORIZON_DAYS`` ahead), and its clock's drift is undone."""
        while True:
            await asyncio.sleep(TIME_RESYNC_S)
            try:
                async with self.aux.execute(
                    "SELECT device_id FROM presence WHERE online = 1"
                ) as cur:
                    online = [str(r[0]) for r in await cur.fetchall()]
            except Exception:
                log.exception("could not list the devices online; their time is sent later")
                continue
            if self.transport.connected.is_set():
                for device_id in online:
                    self._send_time(device_id)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry.refresh_s)
            try:
                await self.registry.reload()
                await self.verifier.reload_if_changed()
            except Exception:
                log.exception("could not reload the registry or roster; keeping the old view")

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        await self.transport.wait_connected(timeout_s)

    def stop(self) -> None:
        self._stopped.set()

    async def wait_closed(self) -> None:
        await self._stopped.wait()

    async def _shutdown(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self.ingest.drain()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        log.info("gateway stopped")

    def snapshot(self) -> GatewaySnapshot:
        m = self.metrics
        invalid = sum(
            s.value
            for metric in m.invalid.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        )
        return GatewaySnapshot(
            committed=int(m.total("tack_records_committed_total")),
            duplicates=int(m.total("tack_duplicates_total")),
            invalid=int(invalid),
            in_flight=self.ingest.in_flight,
            commits=self.writer.commits,
            latency=m.latency_summary(),
            connected=self.transport.connected.is_set(),
        )
