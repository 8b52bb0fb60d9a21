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


@dataclass(frozen=True, slots=True)
class Outcome[R]:
    """One task's result or error, with when it started and what it cost its worker thread."""

    value: R | None
    error: str | None
    started_at: float  # seconds since the epoch, comparable across processes
    wall_s: float
    cpu_s: float  # CPU time of the worker thread that ran it


class CapturedCall[T, R]:
    """Wraps a task function so that a failing task becomes an error Outcome instead of failing
    its whole batch: a service runs many independent jobs per map."""

    def __init__(self, fn: Callable[[T], R]) -> None:
        self.fn = fn

    def __call__(self, task: T) -> Outcome[R]:
        started_at = time.time()
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            value: R | None = self.fn(task)
            error = None
        except Exception as caught:
            value, error = None, f"{type(caught).__name__}: {caught}"
        return Outcome(
            value,
            error,
            started_at,
            time.perf_counter() - started,
            time.thread_time() - cpu_started,
        )
