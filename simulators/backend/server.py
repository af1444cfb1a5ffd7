"""The backend simulator served by uvicorn on a real loopback port, in a background thread.

The listening socket is bound here, before uvicorn starts, so asking for port 0 can never race
another process for a port picked in advance; ``stop()`` closes it and joins the thread.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from simulators.backend.app import create_app
from simulators.backend.state import BackendState

START_TIMEOUT_S = 10.0
# In-flight requests get this long to finish at stop; a held upload must not block a test.
GRACEFUL_SHUTDOWN_S = 1
STOP_TIMEOUT_S = 10.0


class BackendServer:
    """``start()``/``stop()`` or ``with BackendServer() as backend: backend.base_url``."""

    def __init__(
        self, state: BackendState | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state or BackendState()
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this. asyncio sets it only on sockets made with
        # proto=IPPROTO_TCP, which this one is not; without it every answer (headers, then
        # body) waited ~40 ms for a delayed ACK, capping one connection at ~23 calls/s.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"tack-backend-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"backend simulator did not start on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                raise RuntimeError(f"backend simulator on {self.base_url} did not stop")
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None
        self._sock = None

    def __enter__(self) -> BackendServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    host: str = "127.0.0.1", port: int = 8700, state: BackendState | None = None
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (uvicorn handles both)."""
    uvicorn.run(
        create_app(state or BackendState()),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
