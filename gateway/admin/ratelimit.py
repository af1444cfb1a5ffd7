"""Failed logins counted per username and per client address, in a sliding window.

After ``max_failures`` failures within ``window_s`` for the name *or* the address, login answers
429 with ``Retry-After`` until the oldest failure leaves the window; the password is not even
checked meanwhile, so guessing gains nothing from waiting for answers. Counting both stops one
address trying many names and many addresses trying one name. Kept in memory: a restart forgets
it, which costs an attacker a gateway restart per few guesses.

A login is counted as a failure *before* its password is checked (:meth:`LoginLimiter.attempt`)
and the count taken back when it turns out right (:meth:`LoginLimiter.succeeded`): checked first
and counted after, many logins sent at once would all pass the check while the first were still
being verified.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

_MAX_KEYS = 50_000  # bounded, whatever names an attacker invents


class LoginLimiter:
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float]) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self._window:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        now = self._clock()
        wait = 0.0
        for key in (f"u:{username}", f"a:{address}"):
            q = self._recent(key, now)
            if q is not None and len(q) >= self._max:
                wait = max(wait, q[-self._max] + self._window - now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def attempt(self, username: str, address: str) -> int:
        """Check and count in one step (no ``await`` between them): 0 when the login may go
        ahead, and it is counted as failed until :meth:`succeeded` says otherwise; else the
        seconds to wait, and nothing is counted."""
        wait = self.retry_after(username, address)
        if wait == 0:
            self.failed(username, address)
        return wait

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        if len(self._failures) > _MAX_KEYS:
            self._failures.clear()
        for key in (f"u:{username}", f"a:{address}"):
            self._failures.setdefault(key, collections.deque()).append(now)

    def succeeded(self, username: str, address: str) -> None:
        """A right password clears the name's count, and takes back the one failure
        :meth:`attempt` counted for the address (only that one: one good account must not reset
        the guessing of others from the same place)."""
        self._failures.pop(f"u:{username}", None)
        q = self._failures.get(f"a:{address}")
        if q:
            q.pop()  # the newest: whichever it was, the address keeps the same count
            if not q:
                del self._failures[f"a:{address}"]
