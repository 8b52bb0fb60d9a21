import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from nogil_bench.runners.base import ExecutorRunner, pickling_problem


def start_method() -> str:
    # forkserver is 3.14's Linux default; named explicitly so every platform that has it agrees,
    # and never fork, which is unsafe once the parent has threads.
    available = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in available else "spawn"


def ignore_interrupts() -> None:
    """Runs in each worker. Ctrl+C signals the whole process group; the parent decides how its
    pool stops (the service drains it), so a worker must not die of the SIGINT meant for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessRunner(ExecutorRunner):
    """A process pool: parallel under any GIL, paying for start-up and pickling."""

    name = "processes"
    order = 3

    @classmethod
    def unsupported_reason(cls, fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
        return pickling_problem(fn, tasks)

    def _create_executor(self) -> Executor:
        context = multiprocessing.get_context(start_method())
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=ignore_interrupts
        )
