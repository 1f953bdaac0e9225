"""A client-side rate limit shared by every call of one connector, and the 429 back-off.

HubSpot allows a private app 100 requests per 10 seconds (burst) and answers 429 with
``Retry-After`` past it; Salesforce counts API calls per day. The pusher runs in one process
at a time (a lease), so one ``RateLimit`` in it keeps every request under the vendor's window;
a 429 anyway (another app on the same account, a smaller limit than configured) pauses every
caller for the ``Retry-After`` the vendor gave, and the call is retried.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimit", "retry_after_seconds"]


class RateLimit:
    """At most ``limit`` calls in any ``window`` seconds (a sliding window), and pauses."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.throttled = 0
        """429 answers seen (``revops crm status``)."""

    def acquire(self) -> None:
        """Wait until a call is allowed, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and now - self._calls[0] >= self.window:
                    self._calls.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._calls) < self.limit:
                    self._calls.append(now)
                    return
                if wait <= 0:
                    wait = self.window - (now - self._calls[0])
            self._sleep(max(wait, 0.001))

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a 429's Retry-After)."""
        with self._lock:
            self.throttled += 1
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def headroom(self) -> int:
        """Calls still allowed in the current window."""
        with self._lock:
            now = self._clock()
            recent = sum(1 for at in self._calls if now - at < self.window)
            return max(self.limit - recent, 0)


def retry_after_seconds(headers: object, default: float = 1.0) -> float:
    """The ``Retry-After`` of a response's headers in seconds (``default`` when absent or a
    date we do not parse), at most a minute."""
    value = None
    getter = getattr(headers, "get", None)
    if callable(getter):
        value = getter("Retry-After") or getter("retry-after")
    try:
        seconds = float(str(value)) if value is not None else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), 60.0)
