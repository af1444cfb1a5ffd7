"""`tack broker config` and the credential commands of `tack devices`, as an admin uses them,
against the broker running the configuration they wrote."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from tests.broker.conftest import SecuredBroker, connect_result

runner = CliRunner()


def _tack(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """The broker re-reads its files on SIGHUP, a moment after the command returned."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def _audit(db_path: Path, action: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT actor, target, detail FROM audit_log WHERE action = ? ORDER BY id", (action,)
        ).fetchall()


def test_added_device_gets_credentials_that_the_running_broker_accepts(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    rows = json.loads(_tack("devices", "add", "dev-c", "--json", "-c", str(toml)))
    assert [r["username"] for r in rows] == ["dev-c"]
    row = rows[0]
    assert (row["port"], row["tls"], row["ca_file"]) == (b.port, True, str(b.ca_file))
    _eventually(
        lambda: connect_result(b.client("dev-c", row["password"]), b.host, b.port) == "Success",
        "dev-c accepted with the password it was given",
    )
    # The audit log says it happened, never what the password is.
    [(actor, target, detail)] = _audit(b.settings.db_path, "device.add")
    assert actor.startswith("cli:")
    assert target == "dev-c"
    assert row["password"] not in detail
    assert row["password"] not in (b.out / "passwords").read_text()


def test_device_added_without_credentials_cannot_log_in(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    [row] = json.loads(
        _tack("devices", "add", "dev-n", "--no-credentials", "--json", "-c", str(toml))
    )
    assert row["password"] is None
    assert "dev-n:" not in (b.out / "passwords").read_text()


def test_revoked_device_is_dropped_and_refused(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    dropped: queue.Queue[str] = queue.Queue()
    online = b.client("dev-a", b.passwords["dev-a"])
    online.on_disconnect = lambda _c, _u, _f, rc, _p: dropped.put(rc.getName())
    assert connect_result(b.client("dev-a", b.passwords["dev-a"]), b.host, b.port) == "Success"
    online.connect(b.host, b.port)
    online.loop_start()
    try:
        out = _tack("devices", "revoke", "dev-a", "-c", str(toml))
        assert "revoked dev-a" in out
        assert "reloaded" in out
        # Mosquitto 2.0 re-checks connected clients when it reloads: the open connection goes.
        dropped.get(timeout=10)
    finally:
        online.disconnect()
        online.loop_stop()
    assert connect_result(b.client("dev-a", b.passwords["dev-a"]), b.host, b.port) == (
        "Not authorized"
    )
    assert connect_result(b.client("dev-b", b.passwords["dev-b"]), b.host, b.port) == "Success"
    [(actor, target, _detail)] = _audit(b.settings.db_path, "device.revoke")
    assert (actor.startswith("cli:"), target) == (True, "dev-a")


def test_credentials_reset_replaces_the_password(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    assert "has MQTT credentials" in _tack("devices", "credentials", "dev-b", "-c", str(toml))
    [row] = json.loads(
        _tack("devices", "credentials", "dev-b", "--reset", "--json", "-c", str(toml))
    )
    old, new = b.passwords["dev-b"], row["password"]
    _eventually(
        lambda: connect_result(b.client("dev-b", old), b.host, b.port) == "Not authorized",
        "the old password refused",
    )
    assert connect_result(b.client("dev-b", new), b.host, b.port) == "Success"
    assert [t for _a, t, _d in _audit(b.settings.db_path, "device.credentials_reset")] == ["dev-b"]


def test_unknown_device_is_refused_with_a_message(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    toml = secured_broker.write_toml(tmp_path / "tack.toml")
    result = runner.invoke(app, ["devices", "credentials", "nobody", "--reset", "-c", str(toml)])
    assert result.exit_code == 1
    assert "no device 'nobody'" in result.output
    assert "Traceback" not in result.output


def test_broker_config_rerun_keeps_the_ca_and_certificate(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    ca_before = (b.out / "ca.crt").read_bytes()
    cert_before = (b.out / "server.crt").read_bytes()
    args = ["broker", "config", "--out", str(b.out), "--port", str(b.port), "-c", str(toml)]
    out = _tack(*args, "--host", "localhost", "--host", "127.0.0.1", "--bind", "127.0.0.1")
    assert "kept" in out
    assert "password =" not in out  # the gateway's account was kept, its password not shown
    assert (b.out / "ca.crt").read_bytes() == ca_before
    assert (b.out / "server.crt").read_bytes() == cert_before
    # New host names need a new certificate, from the same CA.
    _tack(*args, "--host", "gw.example", "--host", "127.0.0.1", "--bind", "127.0.0.1")
    assert (b.out / "ca.crt").read_bytes() == ca_before
    assert (b.out / "server.crt").read_bytes() != cert_before
    renewed = (b.out / "server.crt").read_bytes()
    _tack(*args, "--host", "gw.example", "--host", "127.0.0.1", "--renew-server-cert")
    assert (b.out / "server.crt").read_bytes() != renewed
    # Secrets are not readable by others; the CA key by its owner only.
    assert stat.S_IMODE(os.stat(b.out / "ca.key").st_mode) == 0o600
    for name in ("server.key", "passwords", "acl"):
        assert stat.S_IMODE(os.stat(b.out / name).st_mode) == 0o640, name


def test_broker_config_refuses_a_bad_host_name(tmp_path: Path) -> None:
    out = tmp_path / "broker"
    result = runner.invoke(
        app, ["broker", "config", "--out", str(out), "--host", "bad host!", "-c", "/dev/null"]
    )
    assert result.exit_code == 2
    assert "--host 'bad host!'" in result.output
    assert not out.exists()


def test_devices_added_before_a_failure_are_printed_and_reach_the_broker(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    b = secured_broker
    toml = b.write_toml(tmp_path / "tack.toml")
    result = runner.invoke(app, ["devices", "add", "dev-x", "dev-a", "--json", "-c", str(toml)])
    assert result.exit_code == 1
    assert "'dev-a' is already registered" in result.output
    [row] = json.loads(result.stdout[result.stdout.index("[") :])
    assert row["device_id"] == "dev-x"
    _eventually(
        lambda: connect_result(b.client("dev-x", row["password"]), b.host, b.port) == "Success",
        "dev-x accepted although the command failed on dev-a",
    )
