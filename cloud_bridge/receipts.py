"""The bridge's receipt loop: upload must-read notice receipts (gateway/notices/) to a backend
that takes them (:class:`cloud_bridge.capabilities.ReceiptSink`).

It works as the record upload does (``cloud_bridge.runner``): the store says which receipts
are pending, so the loop resumes after any stop by sending what is still pending; each receipt
carries the idempotency key ``notice id:device id``, so one the backend stored just before a
crash, or whose answer was lost, is answered "duplicate" the second time and stored once; a
transient failure waits a capped, jittered backoff; a refusal is kept with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiosqlite

from cloud_bridge.adapter import CloudError, UploadOutcome, cause_of
from cloud_bridge.capabilities import ReceiptResult, ReceiptSink
from devices.protocol.errors import TackError
from gateway.notices.store import (
    OutReceipt,
    mark_receipts_failed,
    mark_receipts_synced,
    note_receipt_attempt,
    pending_receipts,
)

log = logging.getLogger(__name__)

StoreAccess = Callable[[], contextlib.AbstractAsyncContextManager[aiosqlite.Connection]]


@dataclass
class ReceiptCounters:
    uploaded: int = 0  # stored at the backend by this bridge
    duplicates: int = 0  # the backend had them already (an answer lost, a restart)
    refused: int = 0  # refused for good: kept failed with the backend's reason
    retries: int = 0  # receipt attempts that must be repeated


class ReceiptSync:
    """One loop, run by the bridge when its adapter is a :class:`ReceiptSink`.

    ``store`` lends the bridge's connection (``Bridge._store``); ``backoff`` is the bridge's
    ``(failures, retry_after_s, transient) -> seconds``; ``wait`` sleeps until a timeout or the
    bridge stops.
    """

    def __init__(
        self,
        adapter: object,
        *,
        store: StoreAccess,
        backoff: Callable[[int, float | None, bool], float],
        wait: Callable[[asyncio.Event, float], Awaitable[None]],
        interval_s: float,
        batch_size: int,
        site: str = "",
    ) -> None:
        self._sink = adapter if isinstance(adapter, ReceiptSink) else None
        self._store = store
        self._backoff = backoff
        self._wait = wait
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._site = site
        self.counters = ReceiptCounters()
        self.last_error: str | None = None

    @property
    def supported(self) -> bool:
        return self._sink is not None

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                again, retry_after_s, transient = await self.round()
            except (TackError, sqlite3.Error) as exc:  # the store: locked, full, unreadable
                log.error("receipt upload round failed: %s", exc, extra={"site": self._site})
                self.last_error = f"store: {exc}"
                again, retry_after_s, transient = None, None, True
            if again is True:
                failures = 0
            elif again is False:
                failures = 0
                await self._wait(stop, self._interval_s)
            else:
                delay_s = self._backoff(failures, retry_after_s, transient)
                failures += 1
                log.info("receipt upload backing off %.2f s", delay_s, extra={"site": self._site})
                await self._wait(stop, delay_s)

    async def round(self) -> tuple[bool | None, float | None, bool]:
        """Upload one batch. ``(True, …)``: a full batch went, more may wait; ``(False, …)``:
        nothing left; ``(None, retry_after_s, transient)``: back off before the next."""
        if self._sink is None:
            return False, None, True
        async with self._borrow() as db:
            batch = await pending_receipts(db, self._batch_size)
        if not batch:
            return False, None, True
        try:
            results = await self._sink.upload_receipts(batch)
        except CloudError as exc:
            log.warning(
                "upload of %d receipts failed: %s", len(batch), exc, extra={"site": self._site}
            )
            self.last_error = exc.message
            self.counters.retries += len(batch)
            async with self._borrow() as db:
                await note_receipt_attempt(db, batch, f"{cause_of(exc)}: {exc.message}")
            return None, exc.retry_after_s, exc.transient
        by_key = {r.idempotency_key: r for r in batch}
        if sorted(r.key for r in results) != sorted(by_key):
            raise RuntimeError("adapter answered for other receipts than it was given")
        await self._apply(by_key, results)
        retry = [r for r in results if r.outcome is UploadOutcome.RETRY]
        if retry:
            hints = [r.retry_after_s for r in retry if r.retry_after_s is not None]
            return None, max(hints, default=None), True
        return len(batch) >= self._batch_size, None, True

    async def _apply(self, by_key: dict[str, OutReceipt], results: list[ReceiptResult]) -> None:
        synced = [
            by_key[r.key]
            for r in results
            if r.outcome in (UploadOutcome.ACCEPTED, UploadOutcome.DUPLICATE)
        ]
        refused = [(by_key[r.key], r.reason) for r in results if r.outcome is UploadOutcome.REFUSED]
        retry = [r for r in results if r.outcome is UploadOutcome.RETRY]
        async with self._borrow() as db:
            if synced:
                await mark_receipts_synced(db, synced)
            if refused:
                await mark_receipts_failed(db, refused)
            for r in retry:
                await note_receipt_attempt(db, [by_key[r.key]], r.reason or "transient failure")
        for receipt, reason in refused:
            log.warning(
                "receipt %s refused by the backend: %s",
                receipt.idempotency_key,
                reason,
                extra={"site": self._site},
            )
        c = self.counters
        c.uploaded += sum(r.outcome is UploadOutcome.ACCEPTED for r in results)
        c.duplicates += sum(r.outcome is UploadOutcome.DUPLICATE for r in results)
        c.refused += len(refused)
        c.retries += len(retry)
        if retry:
            self.last_error = retry[0].reason

    @contextlib.asynccontextmanager
    async def _borrow(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._store() as db:
            yield db
