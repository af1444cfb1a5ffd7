"""The Mosquitto configuration Tack writes, and the connection facts it records beside it.

Choices that matter, and why:

- ``allow_anonymous false`` with a password file and an ACL on every listener: a device is
  whoever its username says, and may touch only its own topics (gateway/broker/acl.py).
- ``use_username_as_clientid``: the client id is the username, so no device can take over
  another's session (or the gateway's) by connecting with its client id.
- ``persistence true``: the gateway's persistent session (fixed client id, QoS 1, PUBACK only
  after the commit) must survive a broker restart, or messages it has not settled are lost.
- ``max_inflight_messages`` and ``max_queued_messages`` as the test brokers have them
  (simulators/mosquitto.py): the gateway holds many PUBACKs open while it commits.
- TLS 1.2 or newer on the device listener; an optional plain listener bound to 127.0.0.1 for
  a gateway on the same machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.broker.credentials import ACL_FILE, PASSWORD_FILE, PID_FILE
from gateway.broker.errors import BrokerConfigError
from gateway.broker.files import write_atomic
from gateway.broker.tls import CA_CERT, SERVER_CERT, SERVER_KEY

CONFIG_FILE = "mosquitto.conf"
INFO_FILE = "tack-broker.json"
PERSISTENCE_DIR = "data"


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """What a device needs to reach this broker, as ``tack devices add`` prints it."""

    host: str
    port: int
    ca_file: str
    local_plain_port: int | None = None

    def save(self, out: Path) -> None:
        write_atomic(out / INFO_FILE, json.dumps(asdict(self), indent=2) + "\n", 0o644)

    @classmethod
    def load(cls, config_dir: Path) -> BrokerInfo | None:
        """The facts ``tack broker config`` recorded; ``None`` if it never ran there."""
        try:
            data = json.loads((config_dir / INFO_FILE).read_text())
            return cls(
                host=str(data["host"]),
                port=int(data["port"]),
                ca_file=str(data["ca_file"]),
                local_plain_port=data.get("local_plain_port"),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerConfigError(
                f"{config_dir / INFO_FILE} is damaged ({exc}); re-run `tack broker config "
                f"--out {config_dir}`"
            ) from exc


def render_config(out: Path, *, port: int, bind: str | None, local_plain_port: int | None) -> str:
    d = out.resolve()
    lines = [
        "# Written by `tack broker config`; re-run it instead of editing (edits are overwritten).",
        "# Start: mosquitto -c " + str(d / CONFIG_FILE),
        "",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d / PASSWORD_FILE}",
        f"acl_file {d / ACL_FILE}",
        f"pid_file {d / PID_FILE}",
        "",
        "# The gateway's persistent session must outlive a broker restart.",
        "persistence true",
        f"persistence_location {d / PERSISTENCE_DIR}/",
        "autosave_interval 60",
        "",
        "# The gateway acknowledges a message only after its commit: allow a deep window.",
        "max_inflight_messages 1000",
        "max_queued_messages 100000",
        "max_packet_size 1048576",
        "set_tcp_nodelay true",
        "",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
        "# Devices (and a gateway on another machine): TLS 1.2 or newer.",
        f"listener {port}" + (f" {bind}" if bind else ""),
        f"certfile {d / SERVER_CERT}",
        f"keyfile {d / SERVER_KEY}",
        f"cafile {d / CA_CERT}",
        "tls_version tlsv1.2",
        "use_username_as_clientid true",
    ]
    if local_plain_port is not None:
        lines += [
            "",
            "# Plain MQTT for a gateway on this machine only; passwords still required.",
            f"listener {local_plain_port} 127.0.0.1",
            "use_username_as_clientid true",
        ]
    return "\n".join(lines) + "\n"
