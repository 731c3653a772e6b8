"""Sign-in rate limiting: failures counted per user name and per client address over a sliding window.

In memory, for one server process: replicas behind one address each count their own failures (so an
attacker spread over N replicas gets N times the attempts), and a restart forgets them. Behind a reverse
proxy every client shares the proxy's address unless uvicorn is told to trust its X-Forwarded-For.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# keys remembered at most (oldest dropped first), so a spray of made-up user names cannot grow memory
_MAX_KEYS = 50_000


class LoginThrottle:
    def __init__(
        self, max_failures: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key may try again (0: now)."""
        with self._lock:
            now = self.clock()
            wait = 0.0
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[-self.max_failures] + self.window - now)
            return math.ceil(wait)

    def failed(self, *keys: str) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > _MAX_KEYS:
                self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
