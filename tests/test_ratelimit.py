"""Rate limits count exactly, from many threads at once (free-threaded: truly at once)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from nogil_bench.core.errors import TooManyRequestsError
from nogil_bench.core.ratelimit import RateLimiter

THREADS, HITS = 8, 100


def test_concurrent_hits_are_each_counted_once() -> None:
    limiter = RateLimiter()

    def hit_many(_: int) -> None:
        for _ in range(HITS):
            limiter.hit("1000/minute", "user", "alice", what="submissions")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(hit_many, range(THREADS)))  # raises what a thread raised

    for _ in range(1000 - THREADS * HITS):
        limiter.hit("1000/minute", "user", "alice", what="submissions")
    with pytest.raises(TooManyRequestsError, match="1000 per 1 minute") as refused:
        limiter.hit("1000/minute", "user", "alice", what="submissions")
    assert int(refused.value.headers["Retry-After"]) >= 1
    limiter.hit("1000/minute", "user", "bob", what="submissions")  # a key of its own


def test_check_does_not_count() -> None:
    limiter = RateLimiter()
    for _ in range(5):
        limiter.check("1/minute", "login", what="failed logins")
    limiter.hit("1/minute", "login", what="failed logins")

    with pytest.raises(TooManyRequestsError, match="failed logins"):
        limiter.check("1/minute", "login", what="failed logins")
