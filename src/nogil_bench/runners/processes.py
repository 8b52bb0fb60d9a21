import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor

from nogil_bench.runners.base import ExecutorRunner


def start_method() -> str:
    # forkserver is 3.14's Linux default; named explicitly so every platform that has it agrees,
    # and never fork, which is unsafe once the parent has threads.
    available = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in available else "spawn"


class ProcessRunner(ExecutorRunner):
    """A process pool: parallel under any GIL, paying for start-up and pickling."""

    name = "processes"

    def _create_executor(self) -> Executor:
        context = multiprocessing.get_context(start_method())
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
