"""The embedded MQTT broker (amqtt) that ``tack demo`` and small single-box sites run in-process.

It spares a first run any set-up; production points the gateway at Mosquitto or an EMQX cluster
instead (``mqtt.host``/``mqtt.port``), with TLS and per-device credentials.
"""

from __future__ import annotations

import logging
from typing import Any

from simulators.mosquitto import free_port

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """``async with EmbeddedBroker() as broker:`` listens on ``broker.host:broker.port``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self._broker: Any = None

    async def __aenter__(self) -> EmbeddedBroker:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
