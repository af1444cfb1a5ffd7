"""A terminal's leave-balance query on the real ingest path: a real broker, a real gateway, the
balances the bridge would have stored, and the ack a terminal reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devices.protocol import AckStatus, ReasonCode
from gateway.attendance.balances import (
    DAY,
    HOUR,
    NONE_ON_FILE,
    LeaveBalance,
    describe_balances,
    replace_balances,
)
from gateway.store import open_database
from tests.fixtures.gateway import RawDevice, count_records


def _query(dev: RawDevice, **body: str) -> dict[str, Any]:
    return dev.envelope(kind="query", body={**body, "q": "leave"})


async def test_a_query_is_answered_with_the_persons_balances_and_kept_local(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    db = await open_database(gw.settings.db_path)
    try:
        balances = [
            LeaveBalance("u001", "annual", 7.5, DAY),
            LeaveBalance("u001", "sick", 12, HOUR),
        ]
        await replace_balances(db, ["u001", "u002"], balances)
    finally:
        await db.close()
    dev = raw_device("term-001")

    asked = _query(dev, card="C0001")
    dev.send(asked, name="query")
    ack = await dev.next_ack()
    assert (ack.msg_id, ack.status, ack.reason) == (asked["id"], AckStatus.ACCEPTED, ReasonCode.OK)
    assert ack.verdict is not None
    assert (ack.verdict.ok, ack.verdict.name, ack.verdict.cls) == (True, "Li Wei", "balance")
    assert ack.verdict.text == "annual 7.5 d, sick 12 h"

    # A resend (the ack was lost) repeats the first answer, from the stored record.
    dev.send(asked, name="query")
    again = await dev.next_ack()
    assert (again.status, again.reason) == (AckStatus.DUPLICATE, ReasonCode.DUPLICATE)
    assert again.verdict == ack.verdict

    # By employee number too; a person with nothing on file is told so, in words a terminal
    # recognises to say in its own language.
    none = _query(dev, emp="E002")
    dev.send(none, name="query")
    ack = await dev.next_ack()
    assert ack.status is AckStatus.ACCEPTED
    assert ack.verdict is not None
    assert (ack.verdict.name, ack.verdict.text, ack.verdict.cls) == (
        "Wang Fang",
        NONE_ON_FILE,
        "balance",
    )

    # Kept where facilities can see who asked, never uploaded as attendance.
    db_path = gw.settings.db_path
    assert count_records(db_path, kind="query", sync_state="local") == 2
    assert count_records(db_path, kind="query", person_id="u001") == 1
    assert count_records(db_path, sync_state="pending") == 0


async def test_a_query_is_refused_like_a_punch_for_an_unknown_or_inactive_person(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=["term-001"])
    dev = raw_device("term-001")
    unknown, inactive = _query(dev, card="NOPE99"), _query(dev, card="C0003")
    dev.send(unknown, name="query")
    a = await dev.next_ack()
    dev.send(inactive, name="query")
    b = await dev.next_ack()
    assert (a.status, a.reason) == (AckStatus.REJECTED, ReasonCode.UNKNOWN_CREDENTIAL)
    assert (b.status, b.reason) == (AckStatus.REJECTED, ReasonCode.PERSON_INACTIVE)
    assert a.verdict is not None
    assert b.verdict is not None
    assert (a.verdict.ok, b.verdict.ok) == (False, False)
    assert b.verdict.name == "Zhang Min"
    assert a.verdict.cls is None, "a refusal says nothing about anyone's balance"
    assert count_records(gw.settings.db_path, kind="query", sync_state="local") == 2


async def test_a_query_from_an_unregistered_terminal_is_refused(
    gateway_factory: Callable[..., Any], raw_device: Callable[[str], RawDevice]
) -> None:
    gw = await gateway_factory(devices=[])
    dev = raw_device("term-x")
    dev.send(_query(dev, card="C0001"), name="query")
    ack = await dev.next_ack()
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.UNKNOWN_DEVICE)
    assert count_records(gw.settings.db_path) == 0


@pytest.mark.parametrize(
    ("balances", "text"),
    [
        ([], NONE_ON_FILE),
        ([("annual", 7.5, DAY), ("sick", 12.0, HOUR)], "annual 7.5 d, sick 12 h"),
        ([("annual", -1.25, DAY)], "annual -1.25 d"),
        ([("annual", 7.499999, DAY), ("comp", 0.0, HOUR)], "annual 7.5 d, comp 0 h"),
        ([("annual", -0.001, DAY)], "annual 0 d"),
        ([("年假", 3.0, DAY), ("study", 2.0, "week")], "年假 3 d, study 2 week"),
    ],
)
def test_balances_are_described_briefly(balances: list[tuple[str, float, str]], text: str) -> None:
    assert describe_balances(balances) == text
