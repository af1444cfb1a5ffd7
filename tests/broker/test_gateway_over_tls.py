"""The whole path over TLS with per-device accounts: a terminal punches, the gateway (with its
own account) stores and acknowledges it, and nobody else's messages get through."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devices.protocol import AckStatus, decode_ack, dumps
from gateway.broker.tls import ensure_ca
from gateway.service import Gateway
from gateway.transport.mqtt import LinkError
from simulators.devices.terminal import Terminal, TerminalConfig
from tests.broker.conftest import SecuredBroker
from tests.fixtures.gateway import count_records


async def test_a_terminal_punches_over_tls_and_the_gateway_stores_and_acks_it(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    async with Gateway(b.settings) as gw:
        await gw.wait_connected(10)
        terminal = Terminal(
            TerminalConfig(
                site=b.settings.site,
                device_id="dev-a",
                state_dir=tmp_path / "dev-a",
                port=b.port,
                username="dev-a",
                password=b.passwords["dev-a"],
                ca_file=b.ca_file,
            )
        )
        terminal.start()
        try:
            assert await terminal.wait_connected(10)
            ack = await terminal.punch_and_wait("C0001")
        finally:
            terminal.stop()
    assert ack.status == AckStatus.ACCEPTED
    assert count_records(b.settings.db_path, device_id="dev-a") == 1


async def test_a_device_cannot_publish_as_another_device(
    secured_broker: SecuredBroker,
) -> None:
    b = secured_broker
    site = b.settings.site
    acks: queue.Queue[bytes] = queue.Queue()
    async with Gateway(b.settings) as gw:
        await gw.wait_connected(10)
        dev_a = b.client("dev-a", b.passwords["dev-a"])
        dev_a.on_message = lambda _c, _u, m: acks.put(bytes(m.payload))
        dev_a.connect(b.host, b.port)
        dev_a.loop_start()
        try:
            dev_a.subscribe(f"tack/v1/{site}/dev-a/cmd/ack", qos=1)
            forged = _punch("dev-b", "forged-1")
            own = _punch("dev-a", "own-1")
            # dev-a, logged in as itself, sends a punch in dev-b's name on dev-b's topic, then
            # one of its own. The broker accepts both PUBLISH packets (MQTT 3.1.1 has no way to
            # say no) but forwards only the second; once its ack is back, the first would have
            # been handled too.
            _publish(dev_a, f"tack/v1/{site}/dev-b/evt/punch", forged)
            _publish(dev_a, f"tack/v1/{site}/dev-a/evt/punch", own)
            ack = decode_ack(await _get(acks))
        finally:
            dev_a.disconnect()
            dev_a.loop_stop()
    assert (ack.status, ack.msg_id) == (AckStatus.ACCEPTED, "own-1")
    assert count_records(b.settings.db_path, device_id="dev-b") == 0
    with sqlite3.connect(b.settings.db_path) as db:
        assert db.execute("SELECT msg_id FROM records").fetchall() == [("own-1",)]


def _punch(device_id: str, msg_id: str) -> bytes:
    return dumps(
        {
            "v": 1,
            "id": msg_id,
            "dev": device_id,
            "seq": 1,
            "ts": int(time.time() * 1000),
            "kind": "punch",
            "body": {"card": "C0001"},
        }
    )


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


async def _get(q: queue.Queue[bytes]) -> bytes:
    return await asyncio.to_thread(q.get, True, 10)


async def test_gateway_refuses_a_broker_its_ca_did_not_sign(
    secured_broker: SecuredBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = secured_broker
    (tmp_path / "other").mkdir()
    ensure_ca(tmp_path / "other", "Some other CA")
    settings = b.settings.model_copy(
        update={"mqtt": b.settings.mqtt.model_copy(update={"ca_file": tmp_path / "other/ca.crt"})}
    )
    async with Gateway(settings) as gw:
        with pytest.raises(LinkError):
            await gw.wait_connected(3)
    assert "certificate verify failed" in caplog.text


async def test_gateway_names_a_missing_ca_file(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    settings = b.settings.model_copy(
        update={"mqtt": b.settings.mqtt.model_copy(update={"ca_file": tmp_path / "nope.crt"})}
    )
    with pytest.raises(LinkError, match=r"mqtt\.ca_file .*nope\.crt does not exist"):
        async with Gateway(settings):
            pass


async def test_the_gateways_queued_messages_survive_a_broker_restart(
    secured_broker: SecuredBroker,
) -> None:
    b = secured_broker
    site = b.settings.site
    async with Gateway(b.settings) as gw:
        await gw.wait_connected(10)  # its persistent session and subscriptions now exist
    # The gateway is away; a punch waits in the broker for its session, across a restart.
    dev_a = b.client("dev-a", b.passwords["dev-a"])
    dev_a.connect(b.host, b.port)
    dev_a.loop_start()
    try:
        _publish(dev_a, f"tack/v1/{site}/dev-a/evt/punch", _punch("dev-a", "queued-1"))
    finally:
        dev_a.disconnect()
        dev_a.loop_stop()
    b.stop()
    b.start()
    async with Gateway(b.settings) as gw:
        await gw.wait_connected(10)
        for _ in range(100):
            if count_records(b.settings.db_path, msg_id="queued-1"):
                break
            await asyncio.sleep(0.1)
    assert count_records(b.settings.db_path, msg_id="queued-1") == 1
