"""The device registry as the ingest path sees it: an in-memory view of the ``devices`` table.

Devices are added by another process (``tack devices add``), so the view reloads every
``registry.refresh_s``; a miss is checked against the table once before a device is refused,
so a device registered a moment ago is never turned away. Misses are remembered for one refresh
period, so a flood from an unknown device costs no queries.
"""

from __future__ import annotations

import time

import aiosqlite

from gateway.store.devices import Device, get_device, list_devices


class DeviceRegistry:
    def __init__(self, db: aiosqlite.Connection, refresh_s: float) -> None:
        self._db = db
        self._refresh_s = refresh_s
        self._devices: dict[str, Device] = {}
        self._misses: dict[str, float] = {}

    async def reload(self) -> None:
        self._devices = {d.device_id: d for d in await list_devices(self._db)}
        self._misses.clear()

    def __len__(self) -> int:
        return len(self._devices)

    async def lookup(self, device_id: str) -> Device | None:
        device = self._devices.get(device_id)
        if device is not None:
            return device
        now = time.monotonic()
        missed = self._misses.get(device_id)
        if missed is not None and now - missed < self._refresh_s:
            return None
        device = await get_device(self._db, device_id)
        if device is None:
            if len(self._misses) > 10_000:  # bounded, whatever a peer invents
                self._misses.clear()
            self._misses[device_id] = now
        else:
            self._devices[device_id] = device
        return device
