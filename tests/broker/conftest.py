"""A Mosquitto started from the configuration `tack broker config` writes: TLS listener, password
file and ACL from a real store, on free ports. Each test gets its own broker and site."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.broker import credentials
from gateway.broker.setup import BrokerSetup, configure, default_group
from gateway.config import TackSettings, load_settings
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device
from gateway.store.roster import upsert_people
from simulators.mosquitto import free_port, wait_for_port
from tests.fixtures.gateway import ROSTER

DEVICES = ("dev-a", "dev-b")


@dataclass
class SecuredBroker:
    """The broker process, the gateway's settings for it and the devices' clear passwords."""

    out: Path
    settings: TackSettings
    setup: BrokerSetup
    passwords: dict[str, str]
    config_file: Path
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.setup.info.port

    @property
    def plain_port(self) -> int:
        assert self.setup.info.local_plain_port is not None
        return self.setup.info.local_plain_port

    @property
    def ca_file(self) -> Path:
        return self.setup.ca_file

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(self.config_file)], stdout=log, stderr=log
        )
        log.close()
        wait_for_port(self.host, self.port, 10)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def write_toml(self, path: Path) -> Path:
        """The gateway's settings as a config file, for driving the `tack` CLI."""
        s = self.settings
        path.write_text(
            f'site = "{s.site}"\ndata_dir = "{s.data_dir}"\n[broker]\nconfig_dir = "{self.out}"\n'
        )
        return path

    def client(
        self,
        username: str,
        password: str | None,
        *,
        ca_file: Path | None = None,
        tls: bool = True,
        client_id: str = "",
    ) -> mqtt.Client:
        """A paho client set up as a device would be (not connected yet)."""
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if username:
            c.username_pw_set(username, password)
        if tls:
            ctx = ssl.create_default_context(cafile=str(ca_file or self.ca_file))
            c.tls_set_context(ctx)
        return c


def connect_result(client: mqtt.Client, host: str, port: int) -> str:
    """CONNACK's answer to one blocking connect: "Success", "Not authorized"..."""
    result: list[str] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: result.append(rc.getName())
    client.connect(host, port, keepalive=30)
    deadline = 100
    while not result and deadline:
        client.loop(timeout=0.1)
        deadline -= 1
    client.disconnect()
    if not result:
        raise AssertionError("no CONNACK from the broker")
    return result[0]


async def _provision(
    settings: TackSettings, out: Path, port: int, plain_port: int
) -> tuple[BrokerSetup, dict[str, str]]:
    setup = await configure(
        settings,
        out,
        hosts=["localhost", "127.0.0.1"],
        port=port,
        bind="127.0.0.1",
        local_plain_port=plain_port,
        renew_server_cert=False,
        reset_gateway_password=False,
        group=default_group(),
        actor="cli:test",
    )
    db = await open_database(settings.db_path)
    try:
        passwords = {}
        for device_id in DEVICES:
            await add_device(db, Device(device_id, settings.site, DeviceType.CLOCK_TERMINAL))
            passwords[device_id] = await credentials.issue(db, device_id)
        await upsert_people(db, ROSTER)
        await credentials.apply(db, settings)
    finally:
        await db.close()
    return setup, passwords


@pytest.fixture
def secured_broker(tmp_path: Path, site: str) -> Iterator[SecuredBroker]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `apt-get install mosquitto`")
    # Not under tmp_path: a broker started as root drops to the `mosquitto` user, which must be
    # able to reach the folder (pytest's base temp folder is private to root).
    out = Path(tempfile.mkdtemp(prefix="tack-broker-"))
    port = free_port()
    base = {
        "site": site,
        "data_dir": str(tmp_path / "data"),
        "bridge": {"enabled": False},
        "registry": {"refresh_s": 0.5},
        "attendance": {"repeat_window_s": 0},
        "broker": {"config_dir": str(out)},
    }
    settings = load_settings(None, **base)
    setup, passwords = asyncio.run(_provision(settings, out, port, free_port()))
    assert setup.gateway_password is not None
    gateway_settings = load_settings(
        None,
        **base,
        mqtt={
            "host": "127.0.0.1",
            "port": port,
            "tls": True,
            "ca_file": str(setup.ca_file),
            "username": setup.gateway_username,
            "password": setup.gateway_password,
        },
    )
    broker = SecuredBroker(
        out=out,
        settings=gateway_settings,
        setup=setup,
        passwords=passwords,
        config_file=setup.config_file,
        log_path=tmp_path / "mosquitto.log",
    )
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(out, ignore_errors=True)
