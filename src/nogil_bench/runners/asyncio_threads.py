import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from nogil_bench.runners.base import PoolLifecycle, TaskFailedError


class AsyncioRunner(PoolLifecycle):
    """An event loop fanning tasks out with asyncio.to_thread over a pool sized to `workers`."""

    name = "asyncio"
    order = 4

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _start(self) -> None:
        self._loop = asyncio.new_event_loop()
        # to_thread uses the loop's default executor; the stock one is sized to the CPU count.
        self._loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nogil-bench-asyncio")
        )

    def _stop(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()
            self._loop = None

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        if self._loop is None:
            raise RuntimeError(f"use the {self.name} runner inside a `with` block")
        return self._loop.run_until_complete(self._gather(fn, tasks))

    async def _gather[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        async def run_one(index: int, task: T) -> R:
            try:
                return await asyncio.to_thread(fn, task)
            except Exception as error:
                raise TaskFailedError(self.name, index, task, error) from error

        try:
            async with asyncio.TaskGroup() as group:
                running = [group.create_task(run_one(i, task)) for i, task in enumerate(tasks)]
        except* TaskFailedError as failures:
            first = min(failures.exceptions, key=lambda failure: getattr(failure, "index", 0))
            raise first from first.__cause__
        return [task.result() for task in running]
