"""Who may connect and what they may touch, on a real Mosquitto running the generated config."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.broker.tls import ensure_ca
from tests.broker.conftest import SecuredBroker, connect_result

NOT_AUTHORISED = "Not authorized"
ACCEPTED = "Success"


def _started(client: mqtt.Client, broker: SecuredBroker) -> mqtt.Client:
    """Connected, with its network loop running; returns once the broker accepted it."""
    accepted = threading.Event()
    client.on_connect = lambda _c, _u, _f, rc, _p: accepted.set() if not rc.is_failure else None
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    assert accepted.wait(10), "the broker did not accept the connection"
    return client


def test_device_with_its_credentials_connects_over_tls(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    assert connect_result(b.client("dev-a", b.passwords["dev-a"]), b.host, b.port) == ACCEPTED


def test_wrong_password_is_refused(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    wrong = b.client("dev-a", b.passwords["dev-b"])
    assert connect_result(wrong, b.host, b.port) == NOT_AUTHORISED
    nobody = b.client("dev-a", None)
    assert connect_result(nobody, b.host, b.port) == NOT_AUTHORISED


def test_plain_connection_to_the_tls_listener_is_refused(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    plain = b.client("dev-a", b.passwords["dev-a"], tls=False)
    with pytest.raises((OSError, AssertionError)):
        # The broker expects a TLS ClientHello and drops the connection; no CONNACK ever comes.
        connect_result(plain, b.host, b.port)


def test_a_broker_certificate_from_another_ca_is_not_trusted(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    other = tmp_path / "other"
    other.mkdir()
    ensure_ca(other, "Some other CA")
    client = b.client("dev-a", b.passwords["dev-a"], ca_file=other / "ca.crt")
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(b.host, b.port)


def test_the_broker_name_is_checked_against_its_certificate(
    secured_broker: SecuredBroker,
) -> None:
    b = secured_broker
    ctx = ssl.create_default_context(cafile=str(b.ca_file))
    with (
        socket.create_connection((b.host, b.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
    ):
        ctx.wrap_socket(raw, server_hostname="not-the-gateway.example")


def test_a_device_cannot_read_another_devices_commands(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    site = b.settings.site
    got: queue.Queue[str] = queue.Queue()
    spy = b.client("dev-a", b.passwords["dev-a"])
    spy.on_message = lambda _c, _u, m: got.put(m.topic)
    subscribed: queue.Queue[list[int]] = queue.Queue()
    spy.on_subscribe = lambda _c, _u, _mid, rcs, _p: subscribed.put([int(r.value) for r in rcs])
    _started(spy, b)
    spy.subscribe(
        [
            (f"tack/v1/{site}/dev-b/cmd/#", 1),
            (f"tack/v1/{site}/+/cmd/#", 1),
            (f"tack/v1/{site}/#", 1),
        ]
    )
    subscribed.get(timeout=10)
    gw = b.client(b.setup.gateway_username, b.setup.gateway_password)
    _started(gw, b)
    # The other device's command first, then one for dev-a: once dev-a's arrives, anything
    # delivered before it would have arrived too (one publisher, in order).
    gw.publish(f"tack/v1/{site}/dev-b/cmd/notice", b"for b", qos=1, retain=True).wait_for_publish(5)
    gw.publish(f"tack/v1/{site}/dev-a/cmd/notice", b"for a", qos=1).wait_for_publish(5)
    topics = [got.get(timeout=10)]
    while not got.empty():
        topics.append(got.get_nowait())
    assert topics == [f"tack/v1/{site}/dev-a/cmd/notice"]
    # Nor a retained one, handed out at subscribe time: subscribing to dev-b's commands first
    # and then to its own, dev-a gets its own retained command and nothing before it.
    gw.publish(f"tack/v1/{site}/dev-a/cmd/time", b"t", qos=1, retain=True).wait_for_publish(5)
    late = b.client("dev-a", b.passwords["dev-a"])
    late_got: queue.Queue[str] = queue.Queue()
    late.on_message = lambda _c, _u, m: late_got.put(m.topic)
    _started(late, b)
    late.subscribe(f"tack/v1/{site}/dev-b/cmd/#", 1)
    late.subscribe(f"tack/v1/{site}/dev-a/cmd/#", 1)
    assert late_got.get(timeout=10) == f"tack/v1/{site}/dev-a/cmd/time"
    for c in (spy, gw, late):
        c.disconnect()
        c.loop_stop()


def test_a_device_cannot_take_over_another_clients_session(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    disconnected: queue.Queue[int] = queue.Queue()
    victim = b.client("dev-b", b.passwords["dev-b"], client_id="dev-b")
    victim.on_disconnect = lambda _c, _u, _f, rc, _p: disconnected.put(int(rc.value))
    _started(victim, b)
    intruder = b.client("dev-a", b.passwords["dev-a"], client_id="dev-b")
    assert connect_result(intruder, b.host, b.port) == ACCEPTED  # connects, as itself
    # A round trip on dev-b's connection: had the broker handed its session to the intruder,
    # dev-b would have been disconnected before this.
    victim.publish(f"tack/v1/{b.settings.site}/dev-b/evt/ping", b"x", qos=1).wait_for_publish(5)
    assert disconnected.empty()
    victim.disconnect()
    victim.loop_stop()


def test_local_plain_listener_still_wants_a_password(secured_broker: SecuredBroker) -> None:
    b = secured_broker
    gateway = b.client(b.setup.gateway_username, b.setup.gateway_password, tls=False)
    assert connect_result(gateway, "127.0.0.1", b.plain_port) == ACCEPTED
    anonymous = b.client("", None, tls=False)
    assert connect_result(anonymous, "127.0.0.1", b.plain_port) == NOT_AUTHORISED
    assert f"listener {b.plain_port} 127.0.0.1\n" in b.config_file.read_text()
