"""A raw MQTT device for the notice tests: it publishes the bytes it is given and keeps what
the gateway sends it on ``cmd/ack`` and ``cmd/notice`` (retained copies included), so a test
can read exactly what a device would read."""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import Ack, Notices, decode_ack, decode_notice, dumps, topic
from simulators.mosquitto import Mosquitto


class NoticeDevice:
    """Subscribes to its ``cmd/+`` like a real device; nothing is decoded until asked."""

    def __init__(self, broker: Mosquitto, site: str, device_id: str, client_id: str = "") -> None:
        self.site = site
        self.device_id = device_id
        self.acks: queue.Queue[bytes] = queue.Queue()
        self.notices: queue.Queue[tuple[bytes, bool]] = queue.Queue()
        self._seq = 0
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"ntc-{site}-{device_id}"
        )
        c.on_message = self._on_message
        c.connect(broker.host, broker.port)
        c.subscribe(topic(site, device_id, "cmd", "+"), qos=1)
        c.loop_start()
        self._client = c
        time.sleep(0.1)  # let the SUBSCRIBE land before anything is answered

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        name = m.topic.rsplit("/", 1)[-1]
        if name == "ack":
            self.acks.put(m.payload)
        elif name == "notice":
            self.notices.put((m.payload, bool(m.retain)))

    def receipt(self, notice_id: str, by: str | None = None) -> dict[str, Any]:
        self._seq += 1
        body: dict[str, Any] = {"notice": notice_id}
        if by is not None:
            body["by"] = by
        return {
            "v": 1,
            "id": f"{self.device_id}-r{self._seq}",
            "dev": self.device_id,
            "seq": self._seq,
            "ts": int(time.time() * 1000),
            "kind": "receipt",
            "body": body,
        }

    def send(self, envelope: dict[str, Any], name: str = "receipt") -> None:
        t = f"tack/v1/{self.site}/{self.device_id}/evt/{name}"
        self._client.publish(t, dumps(envelope), qos=1).wait_for_publish(5)

    def birth(self, boot: int) -> None:
        t = topic(self.site, self.device_id, "state", "online")
        payload = dumps({"v": 1, "online": True, "boot": boot})
        self._client.publish(t, payload, qos=1, retain=True).wait_for_publish(5)

    def clear_retained_notices(self) -> None:
        """What an operator (or a broker restarted without persistence) does to the topic."""
        t = topic(self.site, self.device_id, "cmd", "notice")
        self._client.publish(t, b"", qos=1, retain=True).wait_for_publish(5)

    async def next_ack(self, timeout_s: float = 10.0) -> Ack:
        raw = await asyncio.to_thread(self.acks.get, True, timeout_s)
        return decode_ack(raw)

    async def next_notices(self, timeout_s: float = 10.0) -> tuple[Notices, bool]:
        """The next ``cmd/notice`` and whether it came as the broker's retained copy."""
        raw, retained = await asyncio.to_thread(self.notices.get, True, timeout_s)
        return decode_notice(raw), retained

    async def notices_until(self, want: list[str], timeout_s: float = 10.0) -> Notices:
        """Read lists until one holds exactly the notice ids ``want``, in order (earlier
        lists may still be on their way: each change is published)."""
        deadline = time.monotonic() + timeout_s
        seen: list[list[str]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no cmd/notice with {want}; got {seen}")
            try:
                notices, _ = await self.next_notices(left)
            except queue.Empty as exc:
                raise AssertionError(f"no cmd/notice with {want}; got {seen}") from exc
            ids = [i.notice_id for i in notices.items]
            seen.append(ids)
            if ids == want:
                return notices

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
