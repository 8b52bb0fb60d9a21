from collections.abc import Callable, Sequence
from types import TracebackType
from typing import ClassVar, Self

from nogil_bench.runners.base import TaskFailedError, check_workers


class SequentialRunner:
    """The baseline: every task on the calling thread, one after another."""

    name: ClassVar[str] = "sequential"
    runs_native_extensions: ClassVar[bool] = True

    def __init__(self, workers: int = 1) -> None:
        # Accepted so every runner is built the same way; one thread does all the work.
        self.workers = check_workers(workers)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        results: list[R] = []
        for index, task in enumerate(tasks):
            try:
                results.append(fn(task))
            except Exception as error:
                raise TaskFailedError(self.name, index, task, error) from error
        return results
