"""Bad input gets a reason code where the device can be addressed, a counter and a log line,
and the gateway keeps serving."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from devices.protocol import MAX_EVT_BYTES, AckStatus, ReasonCode
from tests.fixtures.gateway import RawDevice, count_records

CASES: list[tuple[str, Callable[[RawDevice], bytes | dict[str, Any]], ReasonCode]] = [
    ("not json", lambda d: b"hello{", ReasonCode.MALFORMED_JSON),
    ("not utf-8", lambda d: b"\xff\xfe{}", ReasonCode.MALFORMED_JSON),
    ("array", lambda d: b"[1,2]", ReasonCode.NOT_AN_OBJECT),
    ("seq as string", lambda d: d.envelope(seq="7"), ReasonCode.WRONG_TYPE),
    ("seq as bool", lambda d: d.envelope(seq=True), ReasonCode.WRONG_TYPE),
    (
        "body missing",
        lambda d: {k: v for k, v in d.envelope().items() if k != "body"},
        ReasonCode.MISSING_FIELD,
    ),
    ("no credential", lambda d: d.envelope(body={}), ReasonCode.MISSING_FIELD),
    ("version 2", lambda d: d.envelope(v=2), ReasonCode.UNSUPPORTED_VERSION),
    ("oversize", lambda d: d.envelope(pad="x" * MAX_EVT_BYTES), ReasonCode.PAYLOAD_TOO_LARGE),
    ("unknown kind", lambda d: d.envelope(kind="teleport"), ReasonCode.UNKNOWN_KIND),
    ("other device's id", lambda d: d.envelope(dev="term-999"), ReasonCode.DEVICE_MISMATCH),
]


@pytest.mark.parametrize(("payload", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_payload_is_refused_with_its_reason(
    gateway_factory: Callable[..., Any],
    raw_device: Callable[[str], RawDevice],
    payload: Callable[[RawDevice], bytes | dict[str, Any]],
    reason: ReasonCode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    caplog.set_level(logging.WARNING)
    dev.send(payload(dev))
    ack = await dev.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, reason)
    assert ack.message  # a sentence a person can act on
    assert gw.metrics.total("tack_invalid_messages_total", reason=str(reason)) == 1
    assert any(getattr(r, "device_id", None) == "term-001" for r in caplog.records)
    assert count_records(gw.settings.db_path) == 0
    # ... and the gateway keeps serving.
    good = dev.envelope()
    dev.send(good)
    after = await dev.next_ack()
    assert (after.status, after.msg_id) == (AckStatus.ACCEPTED, good["id"])


async def test_salvaged_id_lets_the_device_match_the_refusal(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    env = dev.envelope(ts="yesterday")
    dev.send(env)
    ack = await dev.next_ack()
    assert (ack.reason, ack.msg_id, ack.seq) == (ReasonCode.WRONG_TYPE, env["id"], env["seq"])


async def test_punch_on_the_wrong_topic_name(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    dev.send(dev.envelope(), name="button")
    ack = await dev.next_ack()
    assert ack.reason is ReasonCode.TOPIC_MISMATCH


async def test_unknown_device_is_refused_and_counted(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    stranger = raw_device("term-404")
    stranger.send(stranger.envelope())
    ack = await stranger.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.UNKNOWN_DEVICE)
    assert "tack devices add" in ack.message
    assert gw.metrics.total("tack_invalid_messages_total", reason="unknown_device") == 1
    assert count_records(gw.settings.db_path) == 0


async def test_revoked_device_is_refused(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    from gateway.store.devices import revoke_device

    gw = await gateway_factory(devices=["term-001"])
    await revoke_device(gw.aux, "term-001")
    await gw.registry.reload()
    dev = raw_device("term-001")
    dev.send(dev.envelope())
    assert (await dev.next_ack()).reason is ReasonCode.DEVICE_REVOKED


async def test_device_registered_while_running_is_accepted_at_once(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    from gateway.store.devices import Device, DeviceType, add_device

    gw = await gateway_factory(devices=[])
    dev = raw_device("term-new")
    await add_device(gw.aux, Device("term-new", gw.settings.site, DeviceType.CLOCK_TERMINAL))
    dev.send(dev.envelope())
    assert (await dev.next_ack()).status is AckStatus.ACCEPTED


async def test_message_on_a_malformed_topic_is_counted_and_dropped(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    dev.send(dev.envelope(), name="punch/extra/levels")
    good = dev.envelope()
    dev.send(good)
    assert (await dev.next_ack()).msg_id == good["id"]  # no answer to the bad one; no crash
    assert gw.metrics.total("tack_invalid_messages_total", reason="bad_topic") == 1


async def test_full_store_answers_store_unavailable_and_keeps_nothing_half_done(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    """A full disk (here: the configured cap, which raises SQLite's own 'full' error) is a
    transient refusal: the device keeps the punch and resends it once there is room."""
    import sqlite3

    gw = await gateway_factory(devices=["term-001"], store={"max_size_mb": 1})
    for size in (4000, 400, 10):  # fill every page up to the cap, big rows then small
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await _fill(gw.aux, size)
    dev = raw_device("term-001")
    env = dev.envelope()
    dev.send(env)
    ack = await dev.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.STORE_UNAVAILABLE)
    assert ack.reason.transient
    assert ack.retry_s
    assert ack.retry_s > 0
    assert count_records(gw.settings.db_path, device_id="term-001") == 0

    await gw.aux.execute("DELETE FROM records WHERE device_id = 'filler'")
    dev.send(env)  # what the device's outbox does after retry_s
    again = await dev.next_ack()
    assert (again.status, again.msg_id) == (AckStatus.ACCEPTED, env["id"])
    assert count_records(gw.settings.db_path, msg_id=env["id"]) == 1


async def _fill(db: Any, size: int) -> None:
    """Insert filler rows through a capped connection until SQLite says the store is full."""
    for i in range(100_000):
        await db.execute(
            "INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms,"
            " received_ts_ms, body, status, reason, verdict, sync_state)"
            " VALUES ('filler', ?, 0, 'punch', 0, 0, ?, 'x', 'x', '{}', 'local')",
            (f"f{size}.{i}", "x" * size),
        )
