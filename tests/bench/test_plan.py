"""What the engine plans to measure, in what order, and the configuration that crosses into
each worker process."""

from dataclasses import replace

import pytest

from nogil_bench.bench.config import CEILING, Config, FunctionTarget, share
from nogil_bench.bench.plan import Interpreter, Matrix, Planned, round_order

FREE_THREADED = Interpreter("/opt/python3.14t", "3.14.7", free_threaded=True)
DEFAULT_BUILD = Interpreter("/opt/python3.14", "3.14.7", free_threaded=False)


def matrix(
    *interpreters: Interpreter, workloads: list[str], runners: list[str], workers: list[int]
) -> Matrix:
    templates = [Config(workload, "sequential", 1) for workload in workloads]
    return Matrix(list(interpreters), [0, 1], templates, runners, workers)


def titles(planned: list[Planned]) -> list[str]:
    return [item.title for item in planned]


def test_sequential_runs_once_per_workload_and_gil_mode() -> None:
    planned = matrix(FREE_THREADED, workloads=["fib"], runners=["threads"], workers=[1, 2]).plan()

    assert titles(planned) == [
        "fib sequential w=1 GIL=0 (3.14.7t)",
        "fib threads w=1 GIL=0 (3.14.7t)",
        "fib threads w=2 GIL=0 (3.14.7t)",
        "fib ceiling w=2 GIL=0 (3.14.7t)",
        "fib sequential w=1 GIL=1 (3.14.7t)",
        "fib threads w=1 GIL=1 (3.14.7t)",
        "fib threads w=2 GIL=1 (3.14.7t)",
        "fib ceiling w=2 GIL=1 (3.14.7t)",
    ]


def test_every_workload_gets_the_hosts_ceiling_at_each_worker_count_above_one() -> None:
    planned = matrix(
        FREE_THREADED, workloads=["pure-python"], runners=["threads"], workers=[1, 2, 4]
    ).plan()

    ceilings = [item for item in planned if item.is_ceiling]
    assert [(item.gil, item.config.workers) for item in ceilings] == [
        (0, 2),
        (0, 4),
        (1, 2),
        (1, 4),
    ]
    assert all(item.config.runner == CEILING for item in ceilings)


def test_a_ceiling_free_matrix_has_no_ceiling() -> None:
    planned = replace(
        matrix(FREE_THREADED, workloads=["native"], runners=["threads"], workers=[2]),
        ceiling=False,
    ).plan()

    assert not any(item.is_ceiling for item in planned)


def test_a_runner_found_unable_to_run_a_workload_is_left_out_for_that_workload_only() -> None:
    """harness.check_runners fills `unsupported`: per interpreter, workload and runner."""
    planned = replace(
        matrix(
            FREE_THREADED,
            workloads=["native", "pure-python"],
            runners=["interpreters"],
            workers=[1],
        ),
        ceiling=False,
        unsupported={(FREE_THREADED.path, "native", "interpreters"): "Pillow"},
    ).plan()

    assert {(item.config.workload, item.config.runner) for item in planned} == {
        ("native", "sequential"),
        ("pure-python", "sequential"),
        ("pure-python", "interpreters"),
    }


def test_a_default_build_is_measured_with_its_gil_only() -> None:
    planned = matrix(DEFAULT_BUILD, workloads=["fib"], runners=["threads"], workers=[2]).plan()

    assert {item.gil for item in planned} == {1}


def test_a_round_puts_compared_configurations_side_by_side_and_every_other_round_reverses() -> None:
    planned = matrix(
        FREE_THREADED, workloads=["pure-python"], runners=["threads", "processes"], workers=[1, 2]
    ).plan()

    first = [planned[index].title for index in round_order(planned, 0)]
    second = [planned[index].title for index in round_order(planned, 1)]

    assert first == [
        "pure-python sequential w=1 GIL=0 (3.14.7t)",
        "pure-python sequential w=1 GIL=1 (3.14.7t)",
        "pure-python threads w=1 GIL=0 (3.14.7t)",
        "pure-python threads w=1 GIL=1 (3.14.7t)",
        "pure-python processes w=1 GIL=0 (3.14.7t)",
        "pure-python processes w=1 GIL=1 (3.14.7t)",
        "pure-python ceiling w=2 GIL=0 (3.14.7t)",
        "pure-python ceiling w=2 GIL=1 (3.14.7t)",
        "pure-python threads w=2 GIL=0 (3.14.7t)",
        "pure-python threads w=2 GIL=1 (3.14.7t)",
        "pure-python processes w=2 GIL=0 (3.14.7t)",
        "pure-python processes w=2 GIL=1 (3.14.7t)",
    ]
    assert second == first[::-1]
    assert [planned[index].title for index in round_order(planned, 2)] == first


def test_the_worker_command_turns_the_gil_on_where_asked_and_leaves_gil0_to_the_build() -> None:
    """GIL=0 is the free-threaded build's default, not -X gil=0, which would keep the GIL off
    even for an extension that has not declared it safe without it."""
    assert FREE_THREADED.command(0) == ["/opt/python3.14t", "-m", "nogil_bench.bench.worker"]
    assert FREE_THREADED.command(1) == [
        "/opt/python3.14t", "-X", "gil=1", "-m", "nogil_bench.bench.worker"
    ]  # fmt: skip
    assert DEFAULT_BUILD.command(1) == ["/opt/python3.14", "-m", "nogil_bench.bench.worker"]


def test_a_config_crosses_into_the_worker_as_json_and_back_unchanged() -> None:
    images = Config("images", "threads", 2, warmups=0, params={"count": 4}, part=1, parts=2)
    function = Config(
        "work.py:step",
        "threads",
        2,
        function=FunctionTarget("work.py:step", count=8, path=("/home/user/bench",)),
    )

    assert Config.from_json(images.to_json()) == images
    assert Config.from_json(function.to_json()) == function
    assert Config.from_json(Config("fib", "threads", 4).to_json()).function is None


@pytest.mark.parametrize(
    ("count", "parts", "shares"),
    [(8, 2, [range(0, 4), range(4, 8)]), (5, 2, [range(0, 3), range(3, 5)]),
     (7, 3, [range(0, 3), range(3, 5), range(5, 7)]), (1, 2, [range(0, 1), range(1, 1)])],
)  # fmt: skip
def test_a_ceilings_processes_share_the_work_in_contiguous_nearly_equal_parts(
    count: int, parts: int, shares: list[range]
) -> None:
    assert [share(count, part, parts) for part in range(parts)] == shares


def test_a_share_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="part 2 of 2"):
        share(4, 2, 2)
