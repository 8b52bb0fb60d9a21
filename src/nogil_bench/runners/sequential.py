from collections.abc import Callable, Sequence

from nogil_bench.runners.base import PoolLifecycle, TaskFailedError


class SequentialRunner(PoolLifecycle):
    """The baseline: every task on the calling thread, one after another. It takes a worker
    count so every runner is built the same way; one thread does all the work."""

    name = "sequential"
    order = 1

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers)

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        results: list[R] = []
        for index, task in enumerate(tasks):
            try:
                results.append(fn(task))
            except Exception as error:
                raise TaskFailedError(self.name, index, task, error) from error
        return results
