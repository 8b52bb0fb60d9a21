"""Rate limits (the `limits` library, a moving window in this process's memory).

Each service process counts on its own: with several processes behind a balancer, a client
gets up to that many times the limit. Calls into the library are serialised by a lock of our
own: its in-memory storage is not safe under free threading (two threads can start the same
expiry timer, "threads can only be started once", a 500 seen under load), and each call takes
microseconds. Limits are written as in the settings, e.g.
"50/second;1000/minute", and every part must hold.
"""

import math
import threading
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from nogil_bench.core.errors import TooManyRequestsError


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _items(self, limit: str) -> list[RateLimitItem]:
        if limit not in self._parsed:
            self._parsed[limit] = parse_many(limit)
        return self._parsed[limit]

    def check(self, limit: str, *key: str, what: str) -> None:
        """TooManyRequestsError (with Retry-After) when `key` is already at `limit`."""
        with self._lock:
            for item in self._items(limit):
                if not self._limiter.test(item, *key):
                    self._refuse(item, key, what)

    def hit(self, limit: str, *key: str, what: str) -> None:
        """Count one for `key`; TooManyRequestsError when that goes over `limit`."""
        with self._lock:
            for item in self._items(limit):
                if not self._limiter.hit(item, *key):
                    self._refuse(item, key, what)

    def _refuse(self, item: RateLimitItem, key: tuple[str, ...], what: str) -> None:
        reset_at = self._limiter.get_window_stats(item, *key).reset_time
        retry_after_s = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequestsError(
            f"too many {what}: the limit is {item}; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
