from concurrent.futures import Executor, ThreadPoolExecutor

from nogil_bench.runners.base import ExecutorRunner


class ThreadRunner(ExecutorRunner):
    """A thread pool: truly parallel on a free-threaded build with the GIL off."""

    name = "threads"
    order = 2

    def _create_executor(self) -> Executor:
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nogil-bench")
