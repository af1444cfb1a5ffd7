"""The client's own rate limit: calls are spaced so the backend's limit is never reached.

Backends count calls per app and API in a one-second window and answer over the limit with an
errcode (DingTalk's 90002) or HTTP 429. A bucket that allowed a burst would overrun such a
window right after an idle spell, so this one has no burst: calls leave at least
``1 / rate`` apart, a little under the declared rate (``RATE_HEADROOM``) so that jitter on the
way cannot squeeze more than the limit into one of the backend's windows.

When the backend says "too fast" anyway (another client on the same app, a lower tier than
declared), the bucket stops for the hint (``Retry-After`` or the errcode's advice), halves
its rate, and climbs back to the declared rate a step per successful call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

RATE_HEADROOM = 0.97  # fraction of the declared rate actually used
MIN_RATE_SHARE = 0.05  # slowing down never goes below this share of the declared rate
RECOVERY_CALLS = 50  # successful calls to climb from the floor back to the full rate
DEFAULT_PAUSE_S = 1.0  # a rate-limit answer without a hint: DingTalk advises 1 s
# How late a call may go and still count from its slot (timer overshoot). Calls then never
# start more than this closer together than 1 / rate, far inside RATE_HEADROOM's margin.
LATE_SLACK_S = 0.005


class TokenBucket:
    """Paces calls to at most ``rate_per_s`` a second; ``rate_per_s = 0`` means no limit.

    ``clock`` and ``sleep`` are injectable so tests can check the pacing without waiting.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        headroom: float = RATE_HEADROOM,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s < 0:
            raise ValueError("rate_per_s must be 0 (no limit) or more")
        self.declared_per_s = rate_per_s
        self._full_per_s = rate_per_s * headroom
        self._rate_per_s = self._full_per_s
        self._clock = clock
        self._sleep = sleep
        self._last_at = float("-inf")  # when the previous call went
        self._paused_until = 0.0
        self.calls = 0
        self.slowdowns = 0

    @property
    def rate_per_s(self) -> float:
        """The pace in use now: the declared rate minus headroom, or less after a slowdown."""
        return self._rate_per_s

    async def acquire(self) -> None:
        """Wait for this call's turn: at least ``1 / rate`` after the previous call started.

        Spacing is checked when a call actually goes, not when it queued, so an event loop
        that stalled and woke several waiters at once still lets them out one interval apart.
        """
        if self._full_per_s <= 0:
            self.calls += 1
            return
        while True:
            now = self._clock()
            at = max(self._last_at + 1.0 / self._rate_per_s, self._paused_until)
            if now >= at:
                # A call a timer's overshoot late counts from its slot, so those overshoots
                # do not add up to a lower rate; one later than that counts from now.
                self._last_at = at if now - at <= LATE_SLACK_S else now
                self.calls += 1
                return
            await self._sleep(at - now)

    def slow_down(self, retry_after_s: float | None) -> None:
        """The backend answered "too fast": pause for its hint and halve the pace (once per
        pause: the other calls that were in flight report the same overrun)."""
        if self._full_per_s <= 0:
            return
        now = self._clock()
        pause_s = DEFAULT_PAUSE_S if retry_after_s is None else retry_after_s
        if now >= self._paused_until:  # calls already in flight report the same overrun once
            self.slowdowns += 1
            self._rate_per_s = max(self._rate_per_s / 2, self._full_per_s * MIN_RATE_SHARE)
        self._paused_until = max(self._paused_until, now + pause_s)

    def succeeded(self) -> None:
        """A call went through: climb back towards the full pace."""
        if self._rate_per_s < self._full_per_s:
            step = self._full_per_s / RECOVERY_CALLS
            self._rate_per_s = min(self._full_per_s, self._rate_per_s + step)
