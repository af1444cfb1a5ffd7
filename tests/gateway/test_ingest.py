"""The durable clock-in path on a real broker and a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from devices.protocol import AckStatus, ReasonCode
from tests.fixtures.gateway import RawDevice, count_records


async def test_punch_is_committed_then_accepted(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    env = dev.envelope()
    dev.send(env)
    ack = await dev.next_ack()
    assert (ack.status, ack.reason, ack.msg_id) == (AckStatus.ACCEPTED, ReasonCode.OK, env["id"])
    assert ack.verdict is not None
    assert ack.verdict.ok
    assert ack.verdict.name == "Li Wei"
    # The ack came after the commit: the record is already in the file.
    assert count_records(gw.settings.db_path, msg_id=env["id"], sync_state="pending") == 1


async def test_same_message_twice_makes_one_record_and_repeats_the_verdict(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    env = dev.envelope()
    dev.send(env)
    first = await dev.next_ack()
    dev.send(env)
    second = await dev.next_ack()
    assert first.status is AckStatus.ACCEPTED
    assert second.status is AckStatus.DUPLICATE
    assert second.verdict == first.verdict
    assert count_records(gw.settings.db_path, msg_id=env["id"]) == 1


async def test_unknown_card_is_refused_and_kept_locally(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    dev.send(dev.envelope(body={"card": "NOPE"}))
    ack = await dev.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.UNKNOWN_CREDENTIAL)
    assert ack.verdict is not None
    assert not ack.verdict.ok
    assert count_records(gw.settings.db_path, sync_state="local") == 1
    assert count_records(gw.settings.db_path, sync_state="pending") == 0


async def test_inactive_person_is_refused(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    dev.send(dev.envelope(body={"emp": "E003"}))
    ack = await dev.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.PERSON_INACTIVE)


async def test_commits_are_counted_in_the_metrics(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    for _ in range(3):
        dev.send(dev.envelope())
        await dev.next_ack()
    commits = gw.metrics.total("tack_commits_total")
    assert 1 <= commits <= 3
    assert gw.metrics.total("tack_commit_batch_size_sum") == 3
    assert gw.metrics.total("tack_records_committed_total") == 3


async def test_gateway_reconnects_after_the_broker_restarts(
    tmp_path: Any, mosquitto_factory: Callable[[], Any], site: str
) -> None:
    """The broker goes away and comes back (new session): the gateway reconnects, subscribes
    again and serves punches; a punch made meanwhile waits in the device's outbox."""
    from gateway.service import Gateway
    from tests.fixtures.gateway import gateway_settings, seed

    broker = mosquitto_factory()
    settings = gateway_settings(tmp_path, broker, site)
    await seed(settings, ["term-001"])
    async with Gateway(settings) as gw:
        await gw.wait_connected(10)
        broker.stop()
        await asyncio.sleep(0.5)
        assert not gw.transport.connected.is_set()
        broker.start()
        await gw.wait_connected(30)
        dev = RawDevice(broker, site, "term-001")
        try:
            env = dev.envelope()
            dev.send(env)
            ack = await dev.next_ack()
        finally:
            dev.close()
    assert (ack.status, ack.msg_id) == (AckStatus.ACCEPTED, env["id"])
    assert gw.transport.connects == 2
