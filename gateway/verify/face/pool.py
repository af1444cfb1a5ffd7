"""A bounded pool of encoding workers, off the event loop.

Encoding is CPU-bound C++ that holds the GIL, so it runs in worker *processes*: the event loop
keeps answering other devices while up to ``workers`` frames are encoded at once, one per core.
The pool admits at most ``workers + queue`` frames; past that :meth:`EncoderPool.analyse`
raises :class:`FaceBusyError` at once, and the device hears ``busy`` with a ``retry_s`` instead of
waiting without end behind a burst it cannot see. Admission is decided synchronously, before
the first ``await``, so it is exact under any interleaving.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

from gateway.verify.face.errors import FaceBusyError
from gateway.verify.face.image import Analysis, QualityLimits, analyse, warm_up


class EncoderPool:
    def __init__(
        self,
        *,
        workers: int = 2,
        queue: int = 8,
        retry_s: float = 2.0,
        limits: QualityLimits | None = None,
        kind: Literal["process", "thread"] = "process",
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("an encoder pool needs at least one worker and a queue of >= 0")
        self.workers = workers
        self.capacity = workers + queue
        self.retry_s = retry_s
        self.limits = limits or QualityLimits()
        self._kind = kind
        self._executor: Executor | None = None
        self._in_flight = 0
        self.rejected = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        """Start the workers and have each load the models (about 1 s), so the first punch of
        the day does not pay for it."""
        for f in [self._create().submit(warm_up) for _ in range(self.workers)]:
            f.result()

    def _create(self) -> Executor:
        if self._executor is not None:
            return self._executor
        if self._kind == "thread":
            self._executor = ThreadPoolExecutor(self.workers, "tack-face", initializer=warm_up)
        else:
            # spawn, not fork: the gateway has threads (SQLite, MQTT) that fork would copy mid-way.
            ctx = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.workers, ctx, initializer=warm_up)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def analyse(self, data: bytes) -> Analysis:
        if self._in_flight >= self.capacity:
            self.rejected += 1
            raise FaceBusyError(
                f"all {self.workers} face workers are busy and {self.capacity - self.workers} "
                "frames are queued",
                retry_s=self.retry_s,
            )
        executor = self._create()
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, analyse, data, self.limits)
        finally:
            self._in_flight -= 1
