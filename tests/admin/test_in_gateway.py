"""The admin app inside a running gateway (admin.enabled): the gateway's own metrics on
/metrics, and a device revoked in the API is refused from its next message on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from gateway.admin.accounts import add_account
from gateway.admin.permissions import Role
from gateway.audit import AuditLog
from gateway.store import open_database
from simulators.mosquitto import free_port

PASSWORD = "a long pass phrase"


async def test_metrics_and_revoke_through_the_gateway(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], Any]
) -> None:
    port = free_port()
    # A slow registry refresh: only the admin app's nudge can make the revoke take at once.
    gw = await gateway_factory(
        devices=["term-1"], admin={"enabled": True, "port": port}, registry={"refresh_s": 60}
    )
    db = await open_database(gw.settings.db_path)
    try:
        await add_account(
            db,
            AuditLog(db, gw.settings.audit_head_file),
            "cli:test",
            "fred",
            Role.FACILITIES,
            PASSWORD,
        )
    finally:
        await db.close()
    device = raw_device("term-1")
    device.send(device.envelope())
    assert (await device.next_ack()).status == "accepted"

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        login = await c.post("/api/login", json={"username": "fred", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        metrics = await c.get("/metrics", headers=headers)
        revoked = await c.post("/api/devices/term-1/revoke", headers=headers)
    assert metrics.status_code == 200
    assert "tack_records_committed_total 1.0" in metrics.text  # the gateway's own registry
    assert "tack_store_bytes" in metrics.text
    assert "tack_bridge_queue_depth 1.0" in metrics.text  # the punch; no bridge: from the store
    assert revoked.status_code == 200, revoked.text

    device.send(device.envelope())
    ack = await device.next_ack()
    assert (ack.status, ack.reason) == ("rejected", "device_revoked")
