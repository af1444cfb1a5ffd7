"""The real MicroPython terminal over TLS, with the broker configuration `tack broker config`
writes (its CA, a TLS 1.2+ listener, the password file and the ACL) on a real Mosquitto, and the
gateway connected over TLS with its own account.

The terminal is given what a technician gives it: the broker's ``ca.crt`` as written (PEM), its
device id as user and the password `tack devices` printed. What it must never do is talk to a
broker its CA did not sign, or lose a punch while it cannot connect.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.broker.tls import ensure_ca
from gateway.service import Gateway
from simulators.devices.firmware import FirmwareConfig, FirmwareDevice
from tests.broker import conftest as broker_rig
from tests.broker.conftest import SecuredBroker
from tests.firmware.rigs import showed, wait, wait_until

pytestmark = pytest.mark.slow

Start = Callable[..., FirmwareDevice]

# The broker `tack broker config` sets up (tests/broker/conftest.py), as the fixture `broker`.
broker = broker_rig.secured_broker


@pytest.fixture
def terminal(broker: SecuredBroker, tmp_path: Path, font_bin: Path) -> Iterator[Start]:
    """``start(device_id, heap=None, **settings)``: a terminal set up for the secured broker
    (TLS with its CA, the device's own password); ``settings`` override any of it."""
    b = broker
    made: list[FirmwareDevice] = []

    def start(device_id: str = "dev-a", heap: str | None = None, **extra: Any) -> FirmwareDevice:
        settings: dict[str, Any] = {
            "mqtt_tls": True,
            "mqtt_ca": str(b.ca_file),
            "mqtt_user": device_id,
            "mqtt_password": b.passwords[device_id],
            "ack_timeout_s": 2,
            "reconnect_max_ms": 1000,
        }
        settings.update(extra)
        cfg = FirmwareConfig(
            site=b.settings.site,
            device_id=device_id,
            data_dir=tmp_path / "fw" / device_id,
            host="localhost",  # a name in the broker's certificate
            port=b.port,
            heap=heap,
            font=font_bin,
            extra=settings,
        )
        dev = FirmwareDevice(cfg).start()
        made.append(dev)
        return dev

    yield start
    for dev in made:
        dev.kill()


@pytest.fixture
async def gateway(broker: SecuredBroker) -> AsyncIterator[Gateway]:
    async with Gateway(broker.settings) as gw:
        await gw.wait_connected(10)
        yield gw


def records(gw: Gateway, device_id: str) -> list[tuple[str, int, str]]:
    with sqlite3.connect(gw.settings.db_path) as db:
        return list(
            db.execute(
                "SELECT msg_id, seq, status FROM records WHERE device_id = ? ORDER BY id",
                (device_id,),
            )
        )


def acked(dev: FirmwareDevice) -> list[str]:
    return [e["id"] for e in dev.of("ack") if e["action"] == "remove"]


def logged(dev: FirmwareDevice, text: str) -> int:
    """How many of the device's log lines contain ``text``."""
    return sum(text in line for line in dev.logs)


async def until_logged(dev: FirmwareDevice, text: str, times: int = 1) -> None:
    try:
        await wait_until(lambda: logged(dev, text) >= times, 20)
    except AssertionError:
        raise AssertionError(f"{text!r} not logged {times}x; device:\n{dev.tail()}") from None


async def test_a_terminal_punches_over_tls_and_the_gateway_stores_and_acks_it(
    gateway: Gateway, terminal: Start
) -> None:
    dev = terminal()
    await wait(dev, "connected")
    dev.punch("C0001")
    queued = await wait(dev, "queued")
    ack = await wait(dev, "ack", id=queued["id"])
    assert (ack["status"], ack["reason"], ack["action"]) == ("accepted", "ok", "remove")
    await wait_until(lambda: showed(dev, "Li Wei"))
    assert records(gateway, "dev-a") == [(queued["id"], queued["seq"], "accepted")]
    # The gateway set the clock over the same link (cmd/time answers the birth message).
    await wait(dev, "time")


async def test_a_broker_signed_by_another_ca_is_refused_and_the_log_says_why(
    gateway: Gateway, terminal: Start, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    ensure_ca(tmp_path / "other", "Some other CA")
    other = tmp_path / "other" / "ca.crt"
    dev = terminal(mqtt_ca=str(other))
    await until_logged(dev, "is not trusted", times=2)  # refused, and refused again on retry
    line = next(line for line in dev.logs if "is not trusted" in line)
    assert f"not signed by the CA in {other}" in line, line
    assert "copy this broker's ca.crt" in line, line
    dev.punch("C0001")
    await wait_until(lambda: any("Saved, 1 waiting" in s for s in dev.screen()))
    assert dev.of("connected") == []
    assert records(gateway, "dev-a") == []


async def test_a_ca_file_holding_an_old_and_a_new_ca_connects(
    broker: SecuredBroker, gateway: Gateway, terminal: Start, tmp_path: Path
) -> None:
    # While a CA is replaced, devices carry both: the file is two PEM certificates.
    (tmp_path / "old").mkdir()
    ensure_ca(tmp_path / "old", "Old CA")
    both = tmp_path / "both.crt"
    both.write_bytes((tmp_path / "old" / "ca.crt").read_bytes() + broker.ca_file.read_bytes())
    dev = terminal(mqtt_ca=str(both))
    await wait(dev, "connected")


async def test_a_name_the_certificate_does_not_list_is_refused(
    gateway: Gateway, terminal: Start
) -> None:
    dev = terminal(mqtt_server_name="gw.elsewhere.example")
    await until_logged(dev, "is not trusted")
    line = next(line for line in dev.logs if "is not trusted" in line)
    assert "does not name gw.elsewhere.example" in line, line
    assert "tack broker config --host" in line, line
    assert dev.of("connected") == []


async def test_a_wrong_password_is_refused_and_the_log_says_so(
    gateway: Gateway, terminal: Start
) -> None:
    dev = terminal(mqtt_password="not-the-password")
    await until_logged(dev, "refused the connection: not authorised", times=2)
    line = next(line for line in dev.logs if "not authorised" in line)
    assert "mqtt_user and mqtt_password" in line, line
    assert dev.of("connected") == []


async def test_a_plain_terminal_on_the_tls_port_is_told_to_set_mqtt_tls(
    gateway: Gateway, terminal: Start
) -> None:
    dev = terminal(mqtt_tls=False, mqtt_ca=None)
    await until_logged(dev, "set mqtt_tls and mqtt_ca")
    assert dev.of("connected") == []


async def test_a_broker_that_never_answers_the_handshake_cannot_hang_the_terminal(
    terminal: Start,
) -> None:
    with socket.socket() as silent:  # the kernel accepts the connection; nobody speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        dev = terminal(mqtt_port=silent.getsockname()[1], socket_timeout_s=1)
        await until_logged(dev, "TLS handshake with localhost", times=2)
        dev.punch("C0001")  # the loop still takes input between attempts
        await wait_until(lambda: any("Saved, 1 waiting" in s for s in dev.screen()))
    line = next(line for line in dev.logs if "TLS handshake" in line)
    assert "ETIMEDOUT" in line, line
    assert "is mqtt_port the broker's TLS port (8883)" in line, line


async def test_punches_wait_in_the_outbox_while_the_broker_is_away_and_none_is_lost(
    broker: SecuredBroker, gateway: Gateway, terminal: Start
) -> None:
    dev = terminal()
    await wait(dev, "connected")
    broker.stop()
    await wait(dev, "disconnected")
    for _ in range(5):
        dev.punch("C0001")
    await wait_until(lambda: len(dev.of("queued")) == 5)
    await wait_until(lambda: any("5 waiting" in line for line in dev.screen()))
    await until_logged(dev, "cannot connect to the broker")

    broker.start()
    await wait_until(lambda: len(set(acked(dev))) == 5, 40)
    punched = [(e["id"], e["seq"]) for e in dev.of("queued")]
    rows = records(gateway, "dev-a")
    assert [(r[0], r[1]) for r in rows] == punched, "each stored once, in punching order"
    assert all(r[2] == "accepted" for r in rows)


async def test_a_burst_of_acks_is_read_whole_from_the_tls_layer(
    gateway: Gateway, terminal: Start
) -> None:
    # No resend may hide a stalled read: an ack left unread inside the TLS layer would only
    # be found by the next packet, and with a minute before any resend nothing else comes.
    dev = terminal(ack_timeout_s=60, send_window=16, keepalive_s=60)
    await wait(dev, "connected")
    for i in range(60):
        dev.punch(f"C{1 + i % 2:04d}")
    try:
        await wait_until(lambda: len(acked(dev)) == 60, 40)
    except AssertionError:
        raise AssertionError(f"{len(acked(dev))} of 60 acked; device:\n{dev.tail()}") from None
    assert not any(e["resend"] for e in dev.of("sent"))
    assert len(records(gateway, "dev-a")) == 60


# The smallest heap at which a TLS terminal connects and punches (docs/firmware.md, Memory):
# at 66K its first connect finds no room for the TLS socket.
TLS_HEAP = "68K"


async def test_a_tls_terminal_punches_in_its_smallest_heap(
    gateway: Gateway, terminal: Start
) -> None:
    dev = terminal(heap=TLS_HEAP, send_window=16)
    await wait(dev, "connected", 30)
    for i in range(500):
        dev.punch(f"C{1 + i % 2:04d}")
    try:
        await wait_until(lambda: len(acked(dev)) == 500 or not dev.running, 90)
    except AssertionError:
        raise AssertionError(f"{len(acked(dev))} of 500 acked; device:\n{dev.tail()}") from None
    assert dev.running, dev.tail()
    assert not any("MemoryError" in line for line in dev.logs), dev.tail()
    assert len(records(gateway, "dev-a")) == 500
