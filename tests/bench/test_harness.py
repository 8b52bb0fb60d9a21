"""The benchmark harness: what it plans, what it derives, and what bench_gil.py writes."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from nogil_bench.bench.harness import (
    Interpreter,
    Matrix,
    Row,
    derive,
    mismatched_outputs,
    to_row,
)
from nogil_bench.bench.report import compare
from nogil_bench.bench.worker import Config, ConfigResult, RunResult

FREE_THREADED = Interpreter("/opt/python3.14t", "3.14.7", free_threaded=True)
DEFAULT_BUILD = Interpreter("/opt/python3.14", "3.14.7", free_threaded=False)
BENCH_GIL = Path(__file__).parents[2] / "scripts" / "bench_gil.py"


def matrix(*interpreters: Interpreter, workloads: list[str], runners: list[str]) -> Matrix:
    return Matrix(list(interpreters), [0, 1], workloads, runners, [1, 2], Config("fib", "x", 1))


def test_sequential_runs_once_per_workload_and_gil_mode() -> None:
    planned = matrix(FREE_THREADED, workloads=["fib"], runners=["sequential", "threads"]).plan()

    titles = [item.title for item in planned]
    assert titles == [
        "fib sequential w=1 GIL=0 (3.14.7t)",
        "fib threads w=1 GIL=0 (3.14.7t)",
        "fib threads w=2 GIL=0 (3.14.7t)",
        "fib sequential w=1 GIL=1 (3.14.7t)",
        "fib threads w=1 GIL=1 (3.14.7t)",
        "fib threads w=2 GIL=1 (3.14.7t)",
    ]


def test_subinterpreters_are_not_planned_for_native_work() -> None:
    planned = matrix(FREE_THREADED, workloads=["native", "pure-python"], runners=["interpreters"])

    assert {(item.config.workload, item.config.runner) for item in planned.plan()} == {
        ("native", "sequential"),
        ("pure-python", "sequential"),
        ("pure-python", "interpreters"),
    }


def test_a_default_build_is_measured_with_its_gil_only() -> None:
    planned = matrix(DEFAULT_BUILD, workloads=["fib"], runners=["threads"]).plan()

    assert {item.gil for item in planned} == {1}


def test_speedup_is_over_sequential_in_the_same_gil_mode(tmp_path: Path) -> None:
    document = tmp_path / "result.json"
    run_bench_gil("fib", "-n", "16", "--tasks", "2", "--json", str(document))

    rows = json.loads(document.read_text())["results"]
    baseline = {row["gil"]: row["wall_s_median"] for row in rows if row["runner"] == "sequential"}
    for row in rows:
        assert row["speedup"] == baseline[row["gil"]] / row["wall_s_median"]
        assert row["efficiency"] == row["speedup"] / row["workers"]


def test_bench_gil_writes_the_documented_json_and_a_chart(tmp_path: Path) -> None:
    document, chart = tmp_path / "result.json", tmp_path / "speedup.svg"

    output = run_bench_gil(
        "image",
        "--quick",
        "--workloads",
        "small-batch",
        "--runners",
        "threads",
        "--workers",
        "2",
        "--json",
        str(document),
        "--chart",
        str(chart),
    )

    result = json.loads(document.read_text())
    assert result["environment"]["free_threaded"] is True
    rows = result["results"]
    assert {(row["runner"], row["gil"]) for row in rows} == {
        ("sequential", 0),
        ("threads", 0),
        ("sequential", 1),
        ("threads", 1),
    }
    required = {"workload", "runner", "gil", "workers", "wall_s_median", "speedup", "efficiency"}
    assert all(required | {"peak_rss_bytes", "karp_flatt", "setup_s"} <= row.keys() for row in rows)
    # Each configuration ran in a fresh interpreter with the GIL mode it claims.
    assert all(row["environment"]["gil_enabled"] is bool(row["gil"]) for row in rows)
    assert "| 3.14.7t | 0 | threads | 2 |" in output
    assert "byte-identical output" in output
    assert chart.read_text().startswith("<svg")


def test_each_configuration_pools_the_runs_of_several_fresh_processes(tmp_path: Path) -> None:
    document = tmp_path / "result.json"
    run_bench_gil(
        "fib", "-n", "12", "--tasks", "2", "--gil", "0", "--processes", "3",
        "--json", str(document),
    )  # fmt: skip

    for result in json.loads(document.read_text())["results"]:
        assert len(result["process_medians_s"]) == 3
        assert len(result["runs_wall_s"]) == 3  # --repeats 1 in each of the three processes


def test_processes_that_disagree_on_the_output_are_refused() -> None:
    item = matrix(FREE_THREADED, workloads=["fib"], runners=["threads"]).plan()[0]
    run = RunResult(1.0, 1.0, 0.0, 0, 0, 0.5, 0.5)
    results = [ConfigResult(item.config, {}, 0.0, 0.0, 0, digest, [run]) for digest in ("a", "b")]

    with pytest.raises(RuntimeError, match="outputs differ between processes"):
        to_row(item, results)


def test_a_process_count_below_one_is_refused() -> None:
    completed = subprocess.run(
        [sys.executable, BENCH_GIL, "fib", "--processes", "0"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 2
    assert "--processes: must be at least 1, got 0" in completed.stderr


def row(workload: str, runner: str, wall_s: float, digest: str = "same") -> Row:
    return Row(
        workload, runner, 2, 0, "3.14.7t", "python", wall_s, 0.0, 0.0, 0.0, False, 0.0, 0.0,
        wall_s, 0.0, 0.0, 0, 0, 0.0, 0.0, 0, digest, [wall_s], [wall_s], {},
    )  # fmt: skip


def test_derive_adds_speedup_efficiency_and_serial_fraction() -> None:
    rows = derive([row("fib", "sequential", 2.0), row("fib", "threads", 1.25)])

    assert (rows[1].speedup, rows[1].efficiency) == (1.6, 0.8)
    assert rows[1].karp_flatt == pytest.approx(0.25)


def test_best_run_speedup_compares_the_fastest_run_of_each_side() -> None:
    sequential, threads = row("fib", "sequential", 2.0), row("fib", "threads", 1.25)
    sequential.runs_wall_s, threads.runs_wall_s = [2.4, 2.0, 1.8], [1.25, 0.9, 1.5]

    derived = derive([sequential, threads])[1]

    assert derived.speedup == 1.6  # medians: 2.0 / 1.25
    assert derived.speedup_best == 2.0  # fastest runs: 1.8 / 0.9


def test_report_re_renders_a_saved_document_without_measuring(tmp_path: Path) -> None:
    document = tmp_path / "result.json"
    run_bench_gil("fib", "-n", "12", "--tasks", "2", "--gil", "0", "--json", str(document))
    saved = json.loads(document.read_text())
    for result in saved["results"]:
        del result["speedup_best"]  # as written before the figure existed
    document.write_text(json.dumps(saved))

    completed = subprocess.run(
        [sys.executable, BENCH_GIL, "report", str(document)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert "| 3.14.7t | 0 | threads | 2 |" in completed.stdout
    assert "best-run speedup" in completed.stdout
    assert "n/ax" not in completed.stdout, "derived figures are recomputed"


def test_outputs_that_differ_between_configurations_are_reported() -> None:
    same = [row("fib", "sequential", 1.0), row("fib", "threads", 1.0)]
    differing = [row("native", "sequential", 1.0), row("native", "threads", 1.0, digest="x")]

    assert mismatched_outputs(same + differing) == ["native"]


def run_bench_gil(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, BENCH_GIL, *args, "--repeats", "1", "--warmups", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def test_compare_reports_how_far_two_runs_speedups_agree() -> None:
    def document(threads_runs: list[float]) -> list[Row]:
        rows = [row("fib", "sequential", 2.0), row("fib", "threads", 1.0)]
        rows[1].runs_wall_s = threads_runs
        rows[1].wall_s_median = statistics.median(threads_runs)
        return derive(rows)

    # B's median is 10% slower, its best run the same as A's.
    output = compare(document([1.0, 1.0, 1.0]), document([1.0, 1.1, 1.1]))

    row_line = "| fib | 3.14.7t | 0 | threads | 2 | 2.00x | 1.82x | -9.1% | 2.00x | 2.00x | +0.0% |"
    assert row_line in output
    assert "median-based speedups: 0 of 1 within 5%" in output
    assert "best-run speedups: 1 of 1 within 5%" in output
