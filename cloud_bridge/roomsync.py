"""Drains the room service's outbox (``room_changes``) to the backend.

The gateway writes a change locally first (the next person sees it at once); this sends it,
oldest first, until the backend has it. Every call carries the row's idempotency key, so a
call whose answer was lost is simply made again. A transient failure puts the row back with a
capped, jittered backoff and ends the round (later changes of the same booking must not
overtake it); a permanent refusal marks it ``failed`` for facilities and moves on. Rows live in
the store, so a restart resumes where the last run stopped.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import aiosqlite

from cloud_bridge.adapter import CloudError
from cloud_bridge.capabilities import Notifier, RoomChange, RoomWriter
from gateway.rooms import store

log = logging.getLogger(__name__)

ROUND_ROWS = 50  # changes per round; a round ends early on the first transient failure

StoreAccess = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]


@dataclass
class RoomSyncCounters:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # an op the adapter has no capability for


class RoomSync:
    def __init__(
        self,
        adapter: object,
        *,
        clock: Callable[[], int],
        backoff_base_s: float,
        backoff_max_s: float,
    ) -> None:
        self._adapter = adapter
        self._clock = clock
        self._base_s = backoff_base_s
        self._max_s = backoff_max_s
        self.counters = RoomSyncCounters()

    @property
    def supported(self) -> bool:
        return isinstance(self._adapter, (RoomWriter, Notifier))

    async def round(self, access: StoreAccess) -> int:
        """Send what is due; how many rows were settled (sent or failed for good)."""
        async with access() as db:
            rows = await store.due_changes(db, self._clock(), ROUND_ROWS)
        settled = 0
        for row in rows:
            try:
                sent = await self._send(row)
            except CloudError as exc:
                delay_s = self._delay_s(row.attempts, exc)
                async with access() as db:
                    await store.mark_retry(
                        db,
                        row.id,
                        str(exc),
                        self._clock() + int(delay_s * 1000),
                        permanent=not exc.transient,
                    )
                if exc.transient:
                    self.counters.retried += 1
                    log.info("room change %s: %s; again in %.1f s", row.idem_key, exc, delay_s)
                    return settled
                self.counters.failed += 1
                settled += 1
                log.error("room change %s refused for good: %s", row.idem_key, exc)
                continue
            async with access() as db:
                if sent:
                    await store.mark_synced(db, row.id)
                else:
                    await store.mark_retry(
                        db, row.id, "the adapter cannot send this", 0, permanent=True
                    )
            settled += 1
        return settled

    async def _send(self, row: store.OutboxRow) -> bool:
        b = row.body
        if row.op == "remind":
            if not isinstance(self._adapter, Notifier):
                self.counters.skipped += 1
                return False
            await self._adapter.notify(row.idem_key, list(b.get("attendees", [])), b["text"])
        else:
            if not isinstance(self._adapter, RoomWriter):
                self.counters.skipped += 1
                return False
            await self._adapter.write_room_change(
                RoomChange(
                    key=row.idem_key,
                    op=row.op,
                    booking_id=row.booking_id,
                    room_id=row.room_id,
                    start_ms=b.get("start_ms"),
                    end_ms=b.get("end_ms"),
                    at_ms=b.get("at_ms"),
                )
            )
        self.counters.sent += 1
        return True

    def _delay_s(self, attempts: int, exc: CloudError) -> float:
        if not exc.transient:
            return 0.0
        delay_s = random.uniform(0, min(self._max_s, self._base_s * 2 ** min(attempts, 30)))
        if exc.retry_after_s is not None:
            delay_s = max(delay_s, min(exc.retry_after_s, self._max_s))
        return delay_s
