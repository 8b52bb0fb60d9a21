"""The concurrency runners, and the one registry that names them."""

from nogil_bench.runners.asyncio_threads import AsyncioRunner
from nogil_bench.runners.base import BaseRunner, TaskFailedError, UnsupportedWorkError
from nogil_bench.runners.celery import CeleryPreforkRunner, CeleryThreadsRunner
from nogil_bench.runners.interpreters import InterpreterRunner
from nogil_bench.runners.processes import ProcessRunner
from nogil_bench.runners.sequential import SequentialRunner
from nogil_bench.runners.threads import ThreadRunner

RUNNERS: dict[str, type[BaseRunner]] = {
    runner.name: runner
    for runner in (
        SequentialRunner,
        ThreadRunner,
        ProcessRunner,
        AsyncioRunner,
        InterpreterRunner,
        CeleryThreadsRunner,
        CeleryPreforkRunner,
    )
}
# The runners that need nothing but this machine: what a benchmark compares when not told.
LOCAL_RUNNERS = tuple(name for name, runner in RUNNERS.items() if not runner.needs_broker)


class UnknownRunnerError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown runner {name!r}; valid runners: {', '.join(RUNNERS)}")


def get_runner(name: str) -> type[BaseRunner]:
    try:
        return RUNNERS[name]
    except KeyError:
        raise UnknownRunnerError(name) from None


__all__ = [
    "LOCAL_RUNNERS",
    "RUNNERS",
    "BaseRunner",
    "TaskFailedError",
    "UnknownRunnerError",
    "UnsupportedWorkError",
    "get_runner",
]
