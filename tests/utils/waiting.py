"""Waiting for something to become true, with a deadline: never a bare sleep."""

import time
from collections.abc import Callable

DEFAULT_TIMEOUT_S = 60.0
POLL_S = 0.02


def wait_until[T](
    condition: Callable[[], T], what: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> T:
    """Polls `condition` until it returns something truthy, and returns that; fails the test,
    naming `what` it waited for, when `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}: never"
        time.sleep(POLL_S)
    return value
