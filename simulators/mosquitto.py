"""A real Mosquitto broker on a free loopback port, for tests and benchmarks.

Each instance writes its own configuration and never touches a system service. The settings
that matter for Tack are explicit: the gateway delays its PUBACK until a record is committed,
so the broker must allow many unacknowledged messages in flight per client, and it must queue
generously for a gateway that is briefly offline.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 10.0

INSTALL_HINT = (
    "mosquitto is not installed: run `apt-get install mosquitto` (Debian/Ubuntu) or "
    "`make test`, which installs it when run as root"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.05)


class Mosquitto:
    """``start()``, ``stop()`` and ``restart()`` keep the same port, so clients reconnect."""

    def __init__(self, port: int | None = None, *, workdir: Path | None = None) -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="tack-mosquitto-"))
        self.log_path = self._workdir / "mosquitto.log"
        self.config_path = self._workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    "persistence false",
                    # PUBACKs wait for the gateway's commit: allow a deep window per client.
                    "max_inflight_messages 1000",
                    "max_queued_messages 100000",
                    "max_packet_size 1048576",
                    # Without it the broker holds a small publish behind Nagle's algorithm
                    # until the peer's delayed ACK: about 40 ms added to every ack.
                    "set_tcp_nodelay true",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "",
                ]
            )
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self._write_config()
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.host, self.port, START_TIMEOUT_S)
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start on port {self.port}; see {self.log_path}"
            ) from exc

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
