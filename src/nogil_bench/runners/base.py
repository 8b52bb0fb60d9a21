"""The contract every concurrency runner meets, and the errors runners raise.

This module must stay importable inside a subinterpreter: no Pillow, nothing heavy.
"""

import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, ProcessPoolExecutor, wait
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

MAX_TASK_REPR_CHARS = 80


class TaskFailedError(Exception):
    """A task raised. The message names the runner and the task; __cause__ is the task's error."""

    def __init__(self, runner: str, index: int, task: object, error: BaseException) -> None:
        self.runner = runner
        self.index = index
        self.error = error
        task_repr = repr(task)
        if len(task_repr) > MAX_TASK_REPR_CHARS:
            task_repr = task_repr[: MAX_TASK_REPR_CHARS - 3] + "..."
        super().__init__(
            f"{runner} runner: task {index} ({task_repr}) failed: {type(error).__name__}: {error}"
        )


class UnsupportedWorkError(Exception):
    """This runner cannot run this kind of work at all, e.g. Pillow inside a subinterpreter."""


class BaseRunner(Protocol):
    """A concurrency model: start a pool, map a picklable function over tasks, shut down."""

    name: ClassVar[str]
    # Where it comes in the registry's lists (the API's enum, a benchmark's default runners).
    order: ClassVar[int]
    # False where extension modules such as Pillow's cannot be loaded in the workers.
    runs_native_extensions: ClassVar[bool]
    # True where the tasks run on Celery task workers: the run needs NOGIL_BENCH_BROKER_URL.
    needs_broker: ClassVar[bool]
    workers: int

    def __init__(self, workers: int) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        """fn applied to every task, results in task order; TaskFailedError on the first failure."""
        ...

    def abandon(self) -> None:
        """Its tasks hang: leaving the `with` block stops what it can without waiting."""
        ...

    def environment(self) -> dict[str, Any]:
        """What a started runner adds to a measurement's environment: where the work ran."""
        ...

    @classmethod
    def unsupported_reason(cls, fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
        """Why this runner cannot run fn over these tasks (e.g. "the function is not picklable
        (a lambda)"), or None when it can: asked before measuring, in the process that would."""
        ...


def pickling_problem(fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
    """Why fn or a task cannot be sent to another process or interpreter (by pickle), or None."""
    try:
        pickle.dumps(fn)
    except Exception as error:  # pickle raises PicklingError, TypeError, AttributeError...
        qualname = getattr(fn, "__qualname__", "")
        if getattr(fn, "__name__", "") == "<lambda>":
            what = "a lambda"
        elif "<locals>" in qualname:
            what = "defined inside another function"
        else:
            what = f"{type(error).__name__}: {error}"
        return f"the function is not picklable ({what}); define it at a module's top level"
    for index, task in enumerate(tasks):
        try:
            pickle.dumps(task)
        except Exception as error:
            return f"task {index} is not picklable ({type(error).__name__}: {error})"
    return None


def _no_op(task: int) -> int:
    return task


def warm_up(runner: BaseRunner) -> None:
    """Make the runner start every worker (spawn processes, create interpreters) now, so that
    start-up can be timed apart from the work."""
    runner.map(_no_op, range(runner.workers * 2))


def check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    return workers


class PoolLifecycle:
    """The context-manager half every runner shares: `with` starts the pool, leaving stops it."""

    name: ClassVar[str]
    order: ClassVar[int]
    runs_native_extensions: ClassVar[bool] = True
    needs_broker: ClassVar[bool] = False

    def __init__(self, workers: int) -> None:
        self.workers = check_workers(workers)
        self._abandoned = False

    def abandon(self) -> None:
        """Its tasks hang (a deadline passed): leaving the `with` block must not wait for them."""
        self._abandoned = True

    def environment(self) -> dict[str, Any]:
        """Nothing to add: a local runner's work runs on the machine the environment describes."""
        return {}

    @classmethod
    def unsupported_reason(cls, fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
        """A runner whose workers share this process runs anything this process can."""
        return None

    def _stop_abandoned(self) -> None:
        """Stop what can be stopped without waiting; a hung thread is left to itself."""

    def _start(self) -> None:
        """Start the pool; runners without one have nothing to do."""

    def _stop(self) -> None:
        """Shut the pool down, waiting for running tasks."""

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._abandoned:
            self._stop_abandoned()
        else:
            self._stop()


class ExecutorRunner(PoolLifecycle):
    """Shared body of the runners built on a concurrent.futures executor."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self._executor: Executor | None = None

    def _create_executor(self) -> Executor:
        raise NotImplementedError

    def _start(self) -> None:
        self._executor = self._create_executor()

    def _stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _stop_abandoned(self) -> None:
        if isinstance(self._executor, ProcessPoolExecutor):
            self._executor.terminate_workers()  # processes, unlike threads, can be stopped
        elif self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        if self._executor is None:
            raise RuntimeError(f"use the {self.name} runner inside a `with` block")
        futures = [self._executor.submit(fn, task) for task in tasks]
        # One wait for the whole batch: waiting on each future in turn would wake this thread
        # once per task, and with many small tasks that wake-up competes with the workers.
        wait(futures, return_when=FIRST_EXCEPTION)
        for index, future in enumerate(futures):
            if future.done() and (error := future.exception()) is not None:
                for pending in futures:
                    pending.cancel()
                translated = self._translate(error)
                if isinstance(translated, UnsupportedWorkError):
                    raise translated from error
                raise TaskFailedError(self.name, index, tasks[index], error) from error
        return [future.result() for future in futures]

    def _translate(self, error: BaseException) -> BaseException:
        """Hook for runners that recognise errors meaning "this work cannot run here"."""
        return error
