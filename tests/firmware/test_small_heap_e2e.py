"""A 64 KiB clock-in terminal and a must-read notice: it punches on and never stays offline.

At 64 KiB a terminal has no room to show a notice beside its punches (docs/firmware.md,
Notices): it leaves the notice unread at the gateway. What must hold anyway, even when the
notice arrives beside a punch or the broker goes away right after: every punch is acked and
leaves the outbox, and the terminal reconnects after a dropped connection (it once ran out of
heap on every connect attempt, for good). On a loaded machine a reconnect can take several
attempts and a verdict can be missed on screen; neither loses a punch.

Real ``micropython -X heapsize=64K`` processes running the mpy bytecode, Mosquitto and the
gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulators.devices.firmware import FirmwareDevice
from simulators.mosquitto import Mosquitto
from tests.firmware.rigs import (
    DRILL,
    Start,
    firmware_fixture,  # noqa: F401 (the fixture `firmware`)
    gateway_on_fixture,  # noqa: F401 (the fixture `gateway_on`)
    see,
    send,
    unread,
    wait,
    wait_until,
)

pytestmark = pytest.mark.slow


async def punch_acked(dev: FirmwareDevice, card: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """Punch ``card``; its ``queued`` event, once the gateway's ack (accepted) is in."""
    before = len(dev.of("queued"))
    dev.punch(card)
    await wait_until(lambda: len(dev.of("queued")) > before)
    queued = dev.of("queued")[before]
    ack = await wait(dev, "ack", timeout_s, id=queued["id"])
    assert (ack["status"], ack["reason"]) == ("accepted", "ok"), ack
    return queued


# What a 64 KiB terminal may be sent (and, for comparison, nothing): one short notice (a few
# hundred bytes, read in one piece by the MQTT client), two long ones (about 800 bytes), four
# of the longest in Chinese (280 characters of three UTF-8 bytes each: a cmd/notice of about
# 3.6 KB, more than the terminal has free beside its punches).
LONG_EN = ("Lift B is out of service until Friday; use lift A or the stairs. " * 5)[:280]
LONG_ZH = ("消防演习今天下午三点开始请走东侧楼梯到停车场集合不要乘坐电梯" * 9)[:280]
NOTICES = {
    "none": [],
    "one-short": [("Fire drill", DRILL)],
    "two-long": [("Lifts", LONG_EN), ("Lifts again", LONG_EN)],
    "four-longest-zh": [(f"消防演习 {i}", LONG_ZH) for i in range(4)],
}


@pytest.mark.parametrize("notices", list(NOTICES), ids=list(NOTICES))
async def test_a_64k_terminal_takes_punches_beside_notices_and_after_broker_restarts(
    mosquitto_factory: Callable[[], Mosquitto], gateway_on: Any, firmware: Start, notices: str
) -> None:
    broker = mosquitto_factory()
    gw = await gateway_on(broker, ["term-h2"])
    dev = firmware("term-h2", broker, heap="64K")
    await wait(dev, "connected")
    await see(dev, "Tap card or enter ID")
    # The cards come while the notices are on their way: they land in the same loop passes.
    ids = [await send(gw, ["term-h2"], text, title) for title, text in NOTICES[notices]]
    await punch_acked(dev, "C0001")
    await punch_acked(dev, "C0002")

    # The broker goes away and comes back, three times: the retained notices come again with
    # every reconnect, and nothing a session left behind may add up.
    for restart in range(1, 4):
        broker.stop()
        await wait_until(lambda: len(dev.of("disconnected")) >= restart)  # noqa: B023
        seq = dev.of("queued")[-1]["seq"] + 1
        dev.punch("C0001")  # offline: kept in the outbox
        offline = await wait(dev, "queued", seq=seq)
        broker.start()
        ack = await wait(dev, "ack", 60, id=offline["id"])
        assert (ack["status"], ack["reason"]) == ("accepted", "ok"), ack
        await punch_acked(dev, "C0002")

    # One session per broker start at least (a session can also restart for lack of heap).
    assert len(dev.of("connected")) >= 4, dev.tail()
    assert sorted(n for n, _ in await unread(gw)) == sorted(ids), "still listed as unread"
    # Nothing lost: every punch taken was acked and left the outbox.
    assert len(dev.of("queued")) == len([e for e in dev.of("ack") if e["action"] == "remove"])
    assert dev.of("ack")[-1]["outbox"] == 0
