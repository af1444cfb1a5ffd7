"""Serving the admin app with uvicorn on the gateway's own event loop.

uvicorn's ``Server.serve`` takes over SIGINT and SIGTERM while it runs; inside the gateway
those belong to the gateway's shutdown order, so the embedded server leaves signals alone and
is stopped by :meth:`AdminServer.stop` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from devices.protocol.errors import TackError

log = logging.getLogger(__name__)


class AdminServeError(TackError):
    """The admin app cannot be served as configured."""


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AdminServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # an access log would hold addresses and paths with ids
            lifespan="off",
            server_header=False,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    async def start(self) -> None:
        # The socket is bound here, not by uvicorn, which would exit the process on a port
        # already taken; this way the gateway gets an error it can report.
        try:
            sock = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as exc:
            raise AdminServeError(
                f"the admin app cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                "free the port or change admin.port / admin.host"
            ) from exc
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="tack.admin")
        # The socket listens already: connections wait in its backlog until uvicorn accepts.
        log.info("admin app on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
