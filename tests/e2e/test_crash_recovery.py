"""Nothing lost, nothing counted twice, when the gateway dies at the worst moments.

A real gateway process, a real Mosquitto, simulated terminals with outboxes, the backend
simulator over HTTP and the bridge inside the gateway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from devices.protocol import AckStatus
from gateway.config import load_settings
from gateway.store.roster import Person
from simulators.backend import BackendServer, demo_roster
from simulators.devices.terminal import Terminal, TerminalConfig
from simulators.mosquitto import Mosquitto
from simulators.netfault import MqttFaultProxy
from tests.fixtures.gateway import seed
from tests.fixtures.processes import GatewayProcess, query, wait_until, write_toml

pytestmark = pytest.mark.slow

DEVICES = ["term-001", "term-002", "term-003"]
PEOPLE = [
    Person(p["userid"], p["name"], card=p["card"], employee_no=p["job_number"])
    for p in demo_roster(20)
]


async def _prepare(
    tmp_path: Path, site: str, mqtt_port: int, backend: BackendServer | None
) -> tuple[Path, Path]:
    config: dict[str, Any] = {
        "site": site,
        "data_dir": str(tmp_path / "data"),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "bridge": {"enabled": backend is not None, "interval_s": 0.2},
        "registry": {"refresh_s": 1.0},
        "attendance": {"repeat_window_s": 0},  # delivery, not policy: cards punch many times
    }
    if backend is not None:
        config["bridge"]["base_url"] = backend.base_url
    path = write_toml(tmp_path / "tack.toml", config)
    settings = load_settings(path)
    await seed(settings, DEVICES, PEOPLE)
    return path, settings.db_path


def _terminal(
    tmp_path: Path, site: str, device_id: str, port: int, ack_timeout_s: float = 2.0
) -> Terminal:
    return Terminal(
        TerminalConfig(
            site=site,
            device_id=device_id,
            state_dir=tmp_path / "devices" / device_id,
            port=port,
            ack_timeout_s=ack_timeout_s,
        )
    )


async def test_gateway_killed_mid_burst_loses_nothing_and_doubles_nothing(
    tmp_path: Path, mosquitto: Mosquitto, backend: BackendServer, site: str
) -> None:
    config, db_path = await _prepare(tmp_path, site, mosquitto.port, backend)
    gw = GatewayProcess(config, tmp_path / "gateway.log")
    gw.start()
    gw.wait_up()
    terminals = [_terminal(tmp_path, site, d, mosquitto.port) for d in DEVICES]
    for t in terminals:
        t.start()
    try:
        handles = [terminals[i % 3].punch(card=PEOPLE[i % len(PEOPLE)].card) for i in range(600)]
        wait_until(
            lambda: query(db_path, "SELECT count(*) FROM records")[0][0] >= 50,
            30,
            "the first records to commit",
            interval_s=0.005,
        )
        gw.kill()  # SIGKILL: no drain, no disconnect, acks and PUBACKs in flight are lost
        committed_at_kill = query(db_path, "SELECT count(*) FROM records")[0][0]
        gw.start()
        acks = await asyncio.gather(*(h.wait(90) for h in handles))
        for t in terminals:
            assert await t.wait_drained(30)
    finally:
        for t in terminals:
            t.stop()
    expected = {f"{h.msg_id}" for h in handles}
    assert committed_at_kill < len(handles), "the kill came too late to prove anything"
    # Every punch acknowledged, as accepted or (when its first ack was lost) duplicate.
    assert {a.status for a in acks} <= {AckStatus.ACCEPTED, AckStatus.DUPLICATE}
    rows = query(db_path, "SELECT msg_id, count(*) FROM records GROUP BY device_id, msg_id")
    assert {m for m, _ in rows} == expected
    assert all(n == 1 for _, n in rows)
    # ... and uploaded exactly once.
    wait_until(
        lambda: (
            query(db_path, "SELECT count(*) FROM records WHERE sync_state = 'pending'") == [(0,)]
        ),
        60,
        "the bridge to upload everything",
    )
    gw.stop()
    at_backend = backend.state.records()
    keys = {r["idempotency_key"] for r in at_backend}
    assert len(at_backend) == len(expected)
    assert keys == {f"{d}:{m}" for d, m in query(db_path, "SELECT device_id, msg_id FROM records")}
    assert all(r["stored"] == 1 for r in at_backend)


async def test_message_redelivered_by_the_broker_after_restart_is_answered_duplicate(
    tmp_path: Path, mosquitto: Mosquitto, site: str
) -> None:
    """The gateway commits a punch, but its ack and its PUBACK never reach the broker (the
    link drops right there). After a restart the broker delivers the punch again: one record,
    and the device finally hears 'duplicate' with the first verdict."""
    with MqttFaultProxy(mosquitto.host, mosquitto.port) as proxy:
        config, db_path = await _prepare(tmp_path, site, proxy.port, None)
        gw = GatewayProcess(config, tmp_path / "gateway.log")
        gw.start()
        gw.wait_up()
        # From the gateway's first ack on, nothing it sends reaches the broker.
        proxy.blackhole_client_to_broker_after(
            lambda _type, topic: topic is not None and topic.endswith("/cmd/ack")
        )
        # The device never resends in this test: the second copy can only be the broker's.
        terminal = _terminal(tmp_path, site, "term-001", mosquitto.port, ack_timeout_s=600)
        terminal.start()
        try:
            handle = terminal.punch(card="C0001")
            assert await asyncio.to_thread(proxy.wait_blackholed, 20)
            assert query(db_path, "SELECT count(*) FROM records") == [(1,)]
            gw.kill()
            proxy.heal()
            proxy.cut()
            gw.start()
            ack = await handle.wait(30)
        finally:
            terminal.stop()
            gw.stop()
    assert ack.status is AckStatus.DUPLICATE
    assert ack.verdict is not None
    assert ack.verdict.ok
    assert ack.verdict.name == "Person 0001"
    assert query(db_path, "SELECT count(*) FROM records") == [(1,)]
    assert "(broker redelivery)" in (tmp_path / "gateway.log").read_text()
