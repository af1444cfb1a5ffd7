"""Fixtures and helpers for the end-to-end tests of the panel and of notices: real MicroPython
devices (``firmware/main.py`` unchanged), Mosquitto and the in-process gateway.

The test modules import the fixtures under their ``*_fixture`` names (the fixtures' own names
are ``firmware`` and ``gateway_on``, as in test_end_to_end.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.notices import store as notice_store
from gateway.notices.service import send_notice
from gateway.service import Gateway
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device
from simulators.devices.firmware import FirmwareConfig, FirmwareDevice
from simulators.mosquitto import Mosquitto
from tests.fixtures.gateway import gateway_settings, seed

Start = Callable[..., FirmwareDevice]


@pytest.fixture(name="firmware")
def firmware_fixture(tmp_path: Path, site: str, font_bin: Path) -> Iterator[Start]:
    """``start(device_id, broker, **settings)`` runs one firmware process; all stop at the end."""
    made: list[FirmwareDevice] = []

    def start(
        device_id: str, broker: Mosquitto, heap: str | None = None, **extra: Any
    ) -> FirmwareDevice:
        app = extra.pop("app", "clock_terminal")
        lang = extra.pop("lang", "en")
        extra.setdefault("ack_timeout_s", 2)
        extra.setdefault("reconnect_max_ms", 1000)
        cfg = FirmwareConfig(
            site=site,
            device_id=device_id,
            data_dir=tmp_path / "fw" / device_id,
            host=broker.host,
            port=broker.port,
            app=app,
            lang=lang,
            heap=heap,
            font=font_bin,
            extra=extra,
        )
        dev = FirmwareDevice(cfg).start()
        made.append(dev)
        return dev

    yield start
    for dev in made:
        dev.kill()


@pytest.fixture(name="gateway_on")
async def gateway_on_fixture(tmp_path: Path, site: str) -> AsyncIterator[Callable[..., Any]]:
    """``await make(broker, terminals, panels={device: room or None}, clock=None, **settings)``;
    ``clock`` (UTC ms) is the gateway's: its room service and the time it gives devices."""
    started: list[Gateway] = []

    async def make(
        broker: Mosquitto,
        terminals: list[str],
        panels: dict[str, str | None] | None = None,
        clock: Callable[[], int] | None = None,
        **overrides: Any,
    ) -> Gateway:
        settings = gateway_settings(tmp_path, broker, site, **overrides)
        await seed(settings, terminals)
        db = await open_database(settings.db_path)
        try:
            for device_id, room_id in (panels or {}).items():
                panel = Device(device_id, site, DeviceType.MEETING_PANEL, room_id=room_id)
                await add_device(db, panel, replace=True)
        finally:
            await db.close()
        gw = Gateway(settings) if clock is None else Gateway(settings, clock=clock)
        await gw.__aenter__()
        started.append(gw)
        await gw.wait_connected(10)
        return gw

    yield make
    for gw in reversed(started):
        await gw.__aexit__(None, None, None)


async def wait(
    dev: FirmwareDevice, name: str, timeout_s: float = 15.0, **match: Any
) -> dict[str, Any]:
    return await asyncio.to_thread(dev.wait_event, name, timeout_s, **match)


async def wait_until(pred: Callable[[], bool], timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def shows(dev: FirmwareDevice, text: str) -> bool:
    """``text`` is on the device's screen now."""
    return any(text in line for line in dev.screen())


def showed(dev: FirmwareDevice, text: str) -> bool:
    """``text`` was on one of the device's screens so far (a message shown for seconds)."""
    return any(text in line for e in dev.of("screen") for line in e["lines"])


async def send(gw: Gateway, to: list[str], text: str, title: str = "") -> str:
    """A notice, as ``tack notices send`` stores it: another connection to the store file."""
    db = await open_database(gw.settings.db_path)
    try:
        notice, _ = await send_notice(db, title=title, text=text, sender="Facilities", to=to)
    finally:
        await db.close()
    return notice.notice_id


async def unread(gw: Gateway) -> list[tuple[str, str]]:
    """(notice, device) pairs ``tack notices`` lists."""
    db = await open_database(gw.settings.db_path)
    try:
        return [(u.notice_id, u.device_id) for u in await notice_store.unread(db)]
    finally:
        await db.close()


async def until_all_read(gw: Gateway, timeout_s: float = 15.0) -> None:
    """Until ``tack notices`` lists nothing unread."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while left := await unread(gw):
        assert loop.time() < deadline, f"still unread: {left}"
        await asyncio.sleep(0.1)


async def see(dev: FirmwareDevice, text: str, timeout_s: float = 20.0) -> None:
    """Until ``text`` is on the device's screen; the device's last lines if it never is."""
    try:
        await wait_until(lambda: shows(dev, text), timeout_s)
    except AssertionError:
        raise AssertionError(f"{text!r} not on screen; device:\n{dev.tail(25)}") from None


# A must-read notice of a usual length, for the notice tests.
DRILL = (
    "Fire drill at 15:00 today: leave by the east stairs and meet at the car park. "
    "Do not use the lifts. Wardens wear yellow vests; follow them."
)
