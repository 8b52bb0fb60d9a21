"""Every runner: results in task order, loud failures naming the task, and its own pool."""

import importlib
import subprocess
import sys
import threading
from importlib.metadata import EntryPoint, EntryPoints, entry_points

import pytest
from loguru import logger

import nogil_bench.runners as registry
from nogil_bench import plugins
from nogil_bench.plugins import Registry
from nogil_bench.runners import (
    ENTRY_POINT_GROUP,
    BaseRunner,
    TaskFailedError,
    UnknownRunnerError,
    UnsupportedWorkError,
    get_runner,
    local_runners,
    runners,
)
from nogil_bench.runners.asyncio_threads import AsyncioRunner
from nogil_bench.runners.processes import start_method
from nogil_bench.runners.sequential import SequentialRunner
from nogil_bench.runners.threads import ThreadRunner
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.images import SyntheticSource, synthetic_image

# The celery runners need a broker and task workers: tests/distributed/test_celery_runner.py.
ALL = sorted(local_runners())
POOLED = [name for name in ALL if name != "sequential"]


def test_the_registry_names_five_local_concurrency_models_and_two_celery_pools() -> None:
    assert list(runners()) == [
        "sequential",
        "threads",
        "processes",
        "asyncio",
        "interpreters",
        "celery-threads",
        "celery-prefork",
    ]
    assert local_runners() == ("sequential", "threads", "processes", "asyncio", "interpreters")
    assert all(runner.name == name for name, runner in runners().items())
    assert all(runners()[name].needs_broker == (name not in local_runners()) for name in runners())


def test_every_runner_comes_from_the_entry_point_group_the_celery_ones_from_distributed() -> None:
    registered = {point.name: point.module for point in entry_points(group=ENTRY_POINT_GROUP)}

    assert registered == {name: runner.__module__ for name, runner in runners().items()}
    assert registered["celery-threads"] == "nogil_bench.distributed.runners"


def fresh[T](loaded: Registry[T]) -> Registry[T]:
    """The same registry as a process that has not listed its group yet."""
    return Registry(loaded.group, loaded.kind, sort_key=loaded.sort_key)


class FiberRunner(SequentialRunner):
    name = "fibers"
    order = 3


def test_a_runner_another_package_registers_is_listed_in_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugin = EntryPoint("fibers", f"{__name__}:FiberRunner", ENTRY_POINT_GROUP)
    installed = entry_points(group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*installed, plugin])
    # As in a process that has not listed them yet.
    monkeypatch.setattr(registry, "RUNNERS", fresh(registry.RUNNERS))

    assert get_runner("fibers") is FiberRunner
    assert local_runners() == (
        "sequential",
        "threads",
        "fibers",
        "processes",
        "asyncio",
        "interpreters",
    )


def test_a_plugin_that_fails_to_load_or_takes_a_built_in_name_leaves_the_rest_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint("broken", "no_such_module_anywhere:Runner", ENTRY_POINT_GROUP)
    impostor = EntryPoint("threads", f"{__name__}:FiberRunner", ENTRY_POINT_GROUP)
    installed = entry_points(group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken, impostor, *installed])
    monkeypatch.setattr(registry, "RUNNERS", fresh(registry.RUNNERS))
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(message.record["message"]), level="WARNING")
    try:
        listed = runners()
    finally:
        logger.remove(sink)

    assert list(listed) == [point.name for point in sorted_by_order(installed)]
    assert listed["threads"] is ThreadRunner
    assert any("'broken'" in warning and "failed to load" in warning for warning in warnings)
    assert any("'threads'" in warning and "is ignored" in warning for warning in warnings)


def sorted_by_order(points: EntryPoints) -> list[EntryPoint]:
    return sorted(points, key=lambda point: (point.load().order, point.name))


def test_the_registry_loads_on_first_use_and_without_celery() -> None:
    """Importing the package loads no runner (a runner's module may import it back), and
    listing them imports Celery nowhere: only a celery runner's run needs it."""
    script = (
        "import sys; import nogil_bench.runners as registry; "
        "print(registry.RUNNERS._loaded is None, 'nogil_bench.runners.threads' in sys.modules); "
        "registry.runners(); print('celery' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == ["True", "False", "False"]


def test_an_unknown_runner_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(
        UnknownRunnerError, match=r"'fibers'; valid runners: sequential, threads, processes"
    ):
        get_runner("fibers")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_task_order(name: str, workers: int) -> None:
    tasks = [12, 1, 7, 0, 15, 3, 9]

    with get_runner(name)(workers) as runner:
        assert runner.map(fib, tasks) == [144, 1, 13, 0, 610, 2, 34]


@pytest.mark.parametrize("name", ALL)
def test_a_failing_task_fails_the_map_loudly_naming_the_task(name: str) -> None:
    with get_runner(name)(2) as runner, pytest.raises(TaskFailedError) as failure:
        runner.map(fib, [5, 6, "seven", 8])  # type: ignore[arg-type]

    assert failure.value.index == 2
    assert f"{name} runner: task 2 ('seven') failed: TypeError" in str(failure.value)
    assert isinstance(failure.value.__cause__, TypeError)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_a_worker_count_below_one_or_not_whole_is_refused(name: str, workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
        get_runner(name)(workers)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", POOLED)
def test_a_pooled_runner_must_be_started_before_use(name: str) -> None:
    with pytest.raises(RuntimeError, match="inside a `with` block"):
        get_runner(name)(1).map(fib, [1])


@pytest.mark.parametrize("name", ["threads", "asyncio"])
def test_thread_based_runners_really_run_workers_at_the_same_time(name: str) -> None:
    # Each task waits for the other at a barrier: with fewer than 2 concurrent workers it
    # would time out instead of finishing.
    barrier = threading.Barrier(2, timeout=10)

    with get_runner(name)(2) as runner:
        assert runner.map(lambda _: barrier.wait() >= 0, [0, 1]) == [True, True]


def test_asyncio_sizes_its_executor_to_the_worker_count_not_the_default() -> None:
    with AsyncioRunner(3) as runner:
        loop = runner._loop
        assert loop is not None
        executor = loop._default_executor  # type: ignore[attr-defined]
        assert executor._max_workers == 3


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver is the Linux default")
def test_processes_use_forkserver_never_fork() -> None:
    assert start_method() == "forkserver"


def test_interpreters_refuse_an_extension_import_clearly_instead_of_crashing() -> None:
    with get_runner("interpreters")(1) as runner, pytest.raises(UnsupportedWorkError) as refusal:
        runner.map(importlib.import_module, ["PIL._imaging"])

    message = str(refusal.value)
    assert "does not support loading in subinterpreters" in message
    assert "run native operations on the threads, processes, asyncio or sequential" in message


def test_interpreters_refuse_arguments_that_need_pillow_to_unpickle() -> None:
    with get_runner("interpreters")(1) as runner, pytest.raises(UnsupportedWorkError) as refusal:
        runner.map(synthetic_image, [SyntheticSource(4, 4, seed=1)])

    assert "NotShareableError" in str(refusal.value)


def test_interpreters_keep_working_after_refusing_work() -> None:
    with get_runner("interpreters")(1) as runner:
        with pytest.raises(UnsupportedWorkError):
            runner.map(importlib.import_module, ["PIL._imaging"])

        assert runner.map(fib, [10]) == [55]


def test_only_subinterpreters_cannot_load_native_extensions() -> None:
    native = {name: runner.runs_native_extensions for name, runner in runners().items()}

    assert native == {name: name != "interpreters" for name in runners()}


@pytest.mark.parametrize("name", ALL)
def test_every_local_runner_opens_with_the_workers_it_was_given(name: str) -> None:
    runner_class: type[BaseRunner] = runners()[name]

    with runner_class(2) as runner:
        assert runner.workers == 2
