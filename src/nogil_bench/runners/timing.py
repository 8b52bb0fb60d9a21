"""Per-task timing that travels with the task to any worker; Pillow-free, picklable."""

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timed[R]:
    value: R
    seconds: float


class TimedCall[T, R]:
    """Wraps a task function so each result carries the time its worker spent on it."""

    def __init__(self, fn: Callable[[T], R]) -> None:
        self.fn = fn

    def __call__(self, task: T) -> Timed[R]:
        started = time.perf_counter()
        value = self.fn(task)
        return Timed(value, time.perf_counter() - started)
