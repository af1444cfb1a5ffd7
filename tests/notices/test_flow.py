"""Must-read notices end to end: a real Mosquitto, the gateway, and raw MQTT devices that read
``cmd/notice`` and send ``receipt`` events exactly as a device does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.protocol import AckStatus, ReasonCode
from gateway.cli import app
from gateway.notices import store
from gateway.notices.service import READ_TEXT, send_notice
from gateway.service import Gateway
from gateway.store import open_database
from simulators.mosquitto import Mosquitto
from tests.notices.helpers import NoticeDevice

Make = Callable[..., Any]


@pytest.fixture
def notice_device(mosquitto: Mosquitto, site: str) -> Iterator[Callable[[str], NoticeDevice]]:
    made: list[NoticeDevice] = []

    def make(device_id: str) -> NoticeDevice:
        dev = NoticeDevice(mosquitto, site, device_id)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


async def _send(gw: Gateway, to: list[str], text: str, title: str = "") -> str:
    """As `tack notices send` does it: another connection to the store file."""
    db = await open_database(gw.settings.db_path)
    try:
        notice, _ = await send_notice(db, title=title, text=text, sender="Facilities", to=to)
    finally:
        await db.close()
    return notice.notice_id


async def _tack_notices(gw: Gateway, tmp_path: Path) -> str:
    """``tack notices`` as an admin runs it beside the gateway, on the same store file."""
    config = tmp_path / "tack.toml"
    config.write_text(
        f'site = "{gw.settings.site}"\ndata_dir = "{gw.settings.data_dir}"\n', encoding="utf-8"
    )
    result = await asyncio.to_thread(CliRunner().invoke, app, ["notices", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


async def _unread(db_path: Path) -> list[tuple[str, str]]:
    db = await open_database(db_path)
    try:
        return [(u.notice_id, u.device_id) for u in await store.unread(db)]
    finally:
        await db.close()


async def test_offline_device_gets_the_notice_when_it_connects_and_receipts_clear_it(
    gateway_factory: Make,
    notice_device: Callable[[str], NoticeDevice],
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
) -> None:
    gw = await gateway_factory(devices=["term-a", "term-b"])
    dev_a = notice_device("term-a")  # term-b stays offline for now
    nid = await _send(gw, ["term-a", "term-b"], "Fire drill at 15:00: east stairs.", "Drill")

    got = await dev_a.notices_until([nid])
    item = got.items[0]
    assert (item.title, item.text, item.sender) == (
        "Drill",
        "Fire drill at 15:00: east stairs.",
        "Facilities",
    )

    # A monitor (not the device) sees term-b's list go out, so the broker holds it retained
    # before term-b connects at all.
    monitor = NoticeDevice(mosquitto, site, "term-b", client_id=f"monitor-{site}")
    try:
        await monitor.notices_until([nid])
    finally:
        monitor.close()
    dev_b = notice_device("term-b")  # connects after the send: the broker's retained copy
    notices, retained = await dev_b.next_notices()
    assert retained, notices
    assert [i.notice_id for i in notices.items] == [nid]

    dev_a.send(dev_a.receipt(nid, by="C0001"))
    ack = await dev_a.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.ACCEPTED, ReasonCode.OK)
    assert ack.verdict is not None
    assert ack.verdict.text == READ_TEXT
    cleared = await dev_a.notices_until([])
    assert cleared.items == ()

    assert await _unread(gw.settings.db_path) == [(nid, "term-b")]
    listed = await _tack_notices(gw, tmp_path)
    assert "1 unread" in listed
    assert nid in listed
    assert "term-b" in listed
    assert "term-a" not in listed
    db = await open_database(gw.settings.db_path)
    try:
        rows = {t.device_id: t for t in await store.targets(db, nid)}
    finally:
        await db.close()
    assert rows["term-a"].receipt_by == "C0001"
    assert rows["term-a"].receipt_person_id == "u001"  # C0001 is Li Wei's card
    assert rows["term-a"].upload_state == store.UploadState.PENDING
    assert rows["term-b"].receipt_ts_ms is None
    assert rows["term-b"].sent_ts_ms is not None


async def test_unknown_notice_is_refused_and_a_resent_receipt_is_a_duplicate(
    gateway_factory: Make, notice_device: Callable[[str], NoticeDevice]
) -> None:
    gw = await gateway_factory(devices=["term-a", "term-b"])
    dev_a = notice_device("term-a")
    nid = await _send(gw, ["term-a"], "Read me")
    other = await _send(gw, ["term-b"], "Not for term-a")
    await dev_a.notices_until([nid])

    dev_a.send(dev_a.receipt("n-never-sent"))
    ack = await dev_a.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.NOTICE_UNKNOWN)
    assert ack.verdict is not None
    assert not ack.verdict.ok

    dev_a.send(dev_a.receipt(other))  # exists, but was never sent to this device
    ack = await dev_a.next_ack()
    assert ack.reason == ReasonCode.NOTICE_UNKNOWN

    first = dev_a.receipt(nid)
    dev_a.send(first)
    ack = await dev_a.next_ack()
    assert ack.status == AckStatus.ACCEPTED
    dev_a.send(first)  # the same message again (an ack lost in a reconnect)
    again = await dev_a.next_ack()
    assert (again.status, again.reason) == (AckStatus.DUPLICATE, ReasonCode.DUPLICATE)
    assert again.verdict == ack.verdict

    dev_a.send(dev_a.receipt(nid))  # a second person acknowledges it: the first one stands
    later = await dev_a.next_ack()
    assert later.status == AckStatus.ACCEPTED
    assert await _unread(gw.settings.db_path) == [(other, "term-b")]


async def test_restarted_gateway_publishes_pending_notices_again(
    gateway_factory: Make, notice_device: Callable[[str], NoticeDevice]
) -> None:
    gw = await gateway_factory(devices=["term-a", "term-b"])
    dev_b = notice_device("term-b")
    first = await _send(gw, ["term-a", "term-b"], "One")
    second = await _send(gw, ["term-b"], "Two")
    await dev_b.notices_until([first, second])
    dev_b.send(dev_b.receipt(first))
    assert (await dev_b.next_ack()).status == AckStatus.ACCEPTED
    await dev_b.notices_until([second])

    await gw.__aexit__(None, None, None)
    dev_b.clear_retained_notices()  # the broker lost its copy (restarted without persistence)
    await dev_b.notices_until([])  # the empty payload itself: reads as no notices
    await gateway_factory(devices=["term-a", "term-b"])
    await dev_b.notices_until([second])  # from the new gateway, not from the broker
    dev_a = notice_device("term-a")  # never connected before: still has `first` to read
    await dev_a.notices_until([first])


async def test_a_birth_publishes_the_list_again(
    gateway_factory: Make, notice_device: Callable[[str], NoticeDevice]
) -> None:
    gw = await gateway_factory(devices=["term-a"])
    dev_a = notice_device("term-a")
    nid = await _send(gw, ["term-a"], "Still there after a broker restart?")
    await dev_a.notices_until([nid])
    dev_a.clear_retained_notices()
    await dev_a.notices_until([])
    dev_a.birth(boot=1)
    await dev_a.notices_until([nid])


async def test_more_than_four_pending_are_sent_oldest_first_four_at_a_time(
    gateway_factory: Make, notice_device: Callable[[str], NoticeDevice]
) -> None:
    gw = await gateway_factory(devices=["term-a"])
    dev_a = notice_device("term-a")
    ids = [await _send(gw, ["term-a"], f"Notice {n}") for n in range(5)]
    await dev_a.notices_until(ids[:4])
    dev_a.send(dev_a.receipt(ids[1]))
    assert (await dev_a.next_ack()).status == AckStatus.ACCEPTED
    await dev_a.notices_until([ids[0], ids[2], ids[3], ids[4]])
