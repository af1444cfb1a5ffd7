"""``/metrics`` in Prometheus' text format: the gateway's own registry (ingest, acks, ack
latency, commits, bridge queue and lag) when the app runs inside the gateway, plus what the
store can tell: devices online, store size, and (without a gateway) records waiting for the
bridge and the bridge lag. Needs ``metrics.read``: an account, or ``admin.metrics_token``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from gateway.admin.auth import context, requires
from gateway.admin.context import AdminContext
from gateway.admin.permissions import Permission
from gateway.admin.queries import store_bytes
from gateway.store.records import sync_stats

router = APIRouter(tags=["metrics"])


class AdminMetrics:
    """Gauges computed from the store at scrape time, in a registry of their own; only those
    the gateway's registry lacks (no gateway: devices online; no bridge in the process: its
    queue and lag, as the store tells them)."""

    def __init__(self, with_gateway: bool, with_bridge: bool) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.store_bytes = Gauge("tack_store_bytes", "Store file and its WAL, in bytes", registry=r)
        self.accounts = Gauge("tack_admin_accounts", "Enabled admin accounts", registry=r)
        self.online = (
            None if with_gateway else Gauge("tack_devices_online", "Devices online", registry=r)
        )
        self.queue = self.lag = None
        if not with_bridge:
            self.queue = Gauge("tack_bridge_queue_depth", "Records waiting for upload", registry=r)
            self.lag = Gauge(
                "tack_bridge_lag_seconds",
                "Age of the oldest record not yet at the backend",
                registry=r,
            )

    async def update(self, ctx: AdminContext) -> None:
        self.store_bytes.set(store_bytes(ctx.settings.db_path))
        async with ctx.db.execute("SELECT count(*) FROM accounts WHERE disabled = 0") as cur:
            self.accounts.set(int((await cur.fetchone() or (0,))[0]))
        if self.online is not None:
            async with ctx.db.execute(
                "SELECT count(*) FROM presence p JOIN devices d ON d.device_id = p.device_id"
                " WHERE p.online = 1 AND d.revoked = 0"
            ) as cur:
                self.online.set(int((await cur.fetchone() or (0,))[0]))
        if self.queue is not None and self.lag is not None:
            stats = await sync_stats(ctx.db)
            self.queue.set(stats.pending)
            self.lag.set(stats.lag_s(ctx.clock()))


@router.get("/metrics", dependencies=[requires(Permission.METRICS_READ)])
async def metrics(request: Request) -> Response:
    ctx = context(request)
    m: AdminMetrics = request.app.state.admin_metrics
    await m.update(ctx)
    body = generate_latest(m.registry)
    service: Any = ctx.service
    if service is not None:
        body = generate_latest(service.metrics.registry) + body
    return Response(body, media_type=CONTENT_TYPE_LATEST)
