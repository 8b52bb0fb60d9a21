"""What the engine plans to measure, in what order, and the configuration that crosses into
each worker process."""

from dataclasses import replace

import pytest

from nogil_bench.bench.config import CEILING, Config, ImageSet, share
from nogil_bench.bench.plan import Interpreter, Matrix, Planned, can_run, round_order
from nogil_bench.workloads.model import Step

FREE_THREADED = Interpreter("/opt/python3.14t", "3.14.7", free_threaded=True)
DEFAULT_BUILD = Interpreter("/opt/python3.14", "3.14.7", free_threaded=False)
IMAGES = ImageSet(4, 16, 12, 7, (Step("box_blur", {"radius": 1}), Step("invert")))


def matrix(
    *interpreters: Interpreter, workloads: list[str], runners: list[str], workers: list[int]
) -> Matrix:
    return Matrix(list(interpreters), [0, 1], workloads, runners, workers, Config("fib", "x", 1))


def titles(planned: list[Planned]) -> list[str]:
    return [item.title for item in planned]


def test_sequential_runs_once_per_workload_and_gil_mode() -> None:
    planned = matrix(FREE_THREADED, workloads=["fib"], runners=["threads"], workers=[1, 2]).plan()

    assert titles(planned) == [
        "fib sequential w=1 GIL=0 (3.14.7t)",
        "fib threads w=1 GIL=0 (3.14.7t)",
        "fib threads w=2 GIL=0 (3.14.7t)",
        "fib sequential w=1 GIL=1 (3.14.7t)",
        "fib threads w=1 GIL=1 (3.14.7t)",
        "fib threads w=2 GIL=1 (3.14.7t)",
    ]


def test_image_workloads_get_the_hosts_ceiling_at_each_worker_count_above_one() -> None:
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


def test_fib_and_a_ceiling_free_matrix_have_no_ceiling() -> None:
    fib = matrix(FREE_THREADED, workloads=["fib"], runners=["threads"], workers=[2]).plan()
    images = replace(
        matrix(FREE_THREADED, workloads=["native"], runners=["threads"], workers=[2]),
        ceiling=False,
    ).plan()

    assert not any(item.is_ceiling for item in fib + images)


def test_subinterpreters_are_not_planned_for_native_work() -> None:
    planned = matrix(
        FREE_THREADED, workloads=["native", "pure-python"], runners=["interpreters"], workers=[1]
    ).plan()

    assert {(item.config.workload, item.config.runner) for item in planned} == {
        ("native", "sequential"),
        ("pure-python", "sequential"),
        ("pure-python", "interpreters"),
    }


def test_a_custom_image_set_decides_by_its_pipeline_what_can_run_it() -> None:
    pure = Config("custom", "sequential", 1, images=IMAGES)
    native = replace(pure, images=replace(IMAGES, pipeline=(Step("grayscale"),)))

    assert can_run("interpreters", pure) is True
    assert can_run("interpreters", native) is False
    assert can_run("threads", native) is True
    assert can_run(CEILING, native) is True


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


def test_the_worker_command_sets_the_gil_mode_where_the_build_has_one() -> None:
    assert FREE_THREADED.command(0) == [
        "/opt/python3.14t", "-X", "gil=0", "-m", "nogil_bench.bench.worker"
    ]  # fmt: skip
    assert DEFAULT_BUILD.command(1) == ["/opt/python3.14", "-m", "nogil_bench.bench.worker"]


def test_a_config_crosses_into_the_worker_as_json_and_back_unchanged() -> None:
    config = Config("custom", "threads", 2, warmups=0, images=IMAGES, part=1, parts=2)

    assert Config.from_json(config.to_json()) == config
    assert Config.from_json(Config("fib", "threads", 4).to_json()).images is None


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
