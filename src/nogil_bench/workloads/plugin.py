"""What a workload is, to the engine and to the packages that add one.

A workload plugin is an object named by an entry point in the group `nogil_bench.workloads`:
its `params` (a dataclass: the parameters a run may set, with their defaults and types, which
the API publishes as a JSON schema) and `build`, which turns parameters into `Work`, in the
worker process that will run it. Most plugins are a FunctionWorkload:

    # mypkg/bench.py
    @dataclass(frozen=True)
    class Params:
        files: int = 64

    def make_tasks(params: Params) -> list[int]:
        return list(range(params.files))

    checksum = FunctionWorkload(
        function=checksum_one,  # a module-level function of one task: picklable
        tasks=make_tasks,
        params=Params,
        description="SHA-256 over generated files",
    )

    # pyproject.toml
    [project.entry-points."nogil_bench.workloads"]
    checksum = "mypkg.bench:checksum"
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nogil_bench.runners.base import BaseRunner
from nogil_bench.runners.timing import TimedCall
from nogil_bench.workloads.digest import DigestCall

ENTRY_POINT_GROUP = "nogil_bench.workloads"

# Runs the chosen tasks (all of them, or a ceiling process's share) once on a started runner,
# appends each task's seconds, and returns each task's output digest, in task order.
type RunTasks = Callable[[BaseRunner, Sequence[Any], list[float]], list[bytes]]


@dataclass(frozen=True, slots=True)
class Work:
    """A workload made ready to run, in the process that runs it."""

    description: str
    tasks: Sequence[Any]
    run: RunTasks
    # Why a runner cannot run this work ("the function is not picklable (a lambda)"), or None.
    unsupported_reason: Callable[[type[BaseRunner]], str | None]


class Workload(Protocol):
    """An installed workload: what an entry point of `nogil_bench.workloads` names."""

    @property
    def description(self) -> str: ...

    @property
    def params(self) -> type[Any]:
        """A dataclass whose fields are the parameters; every field needs a default."""
        ...

    @property
    def quick(self) -> Mapping[str, Any]:
        """Parameters for a quick run (`--quick`), over the defaults; may be empty."""
        ...

    def build(self, params: Any) -> Work: ...


def function_work(fn: Callable[[Any], object], tasks: Sequence[Any], description: str) -> Work:
    """fn called once per task, on whichever runner: each worker returns the digest of its
    result (workloads.digest), so results are compared across runners without travelling."""
    call = TimedCall(DigestCall(fn))

    def run(runner: BaseRunner, chosen: Sequence[Any], task_seconds: list[float]) -> list[bytes]:
        results = runner.map(call, chosen)
        task_seconds.extend(result.seconds for result in results)
        return [result.value for result in results]

    def unsupported_reason(runner: type[BaseRunner]) -> str | None:
        return runner.unsupported_reason(fn, tasks)

    return Work(description, tasks, run, unsupported_reason)


@dataclass(frozen=True, slots=True)
class FunctionWorkload[P, T]:
    """The usual plugin: `function` applied to each task that `tasks(params)` makes."""

    function: Callable[[T], object]
    tasks: Callable[[P], Sequence[T]]
    params: type[P]
    description: str
    quick: Mapping[str, Any] = field(default_factory=dict)

    def build(self, params: P) -> Work:
        tasks = list(self.tasks(params))
        return function_work(self.function, tasks, f"{self.description} ({len(tasks)} tasks)")
