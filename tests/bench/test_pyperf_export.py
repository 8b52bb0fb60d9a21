import json
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from nogil_bench.bench.pyperf_export import (
    MetadataValue,
    PyperfBenchmark,
    pyperf_suite,
    write_pyperf_suite,
)

THREADS = PyperfBenchmark(
    "resize threads x4", [1.0, 1.01, 0.99, 1.02, 0.98], [1.3], {"runner": "threads", "workers": 4}
)
SEQUENTIAL = PyperfBenchmark("resize sequential", [3.9, 4.0, 4.1], [], {"runner": "sequential"})
HOST: dict[str, MetadataValue] = {
    "hostname": "bench-box",
    "python_version": "3.14.7t",
    "cpu_count": 2,
}


def pyperf_cli(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pyperf", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def test_pyperf_loads_the_written_suite_with_the_same_names_values_and_warmups(
    tmp_path: Path,
) -> None:
    path = tmp_path / "suite.json"
    write_pyperf_suite(path, [THREADS, SEQUENTIAL], metadata=HOST)

    suite = pyperf.BenchmarkSuite.load(str(path))
    assert suite.get_benchmark_names() == [THREADS.name, SEQUENTIAL.name]
    for expected in (THREADS, SEQUENTIAL):
        benchmark = suite.get_benchmark(expected.name)
        assert benchmark.get_values() == tuple(expected.values)
        (run,) = benchmark.get_runs()  # no blocks named: all in one process, one run
        assert run.warmups == tuple((1, warmup) for warmup in expected.warmups)
        assert benchmark.get_unit() == "second"
        assert benchmark.get_metadata() | HOST == benchmark.get_metadata()


def test_each_block_of_fresh_processes_is_a_pyperf_run_the_first_with_the_warmups(
    tmp_path: Path,
) -> None:
    blocked = PyperfBenchmark(
        "fib threads x2", [1.0, 1.1, 1.2, 1.3], [1.5], {"runner": "threads"}, blocks=[0, 0, 1, 1]
    )
    path = tmp_path / "suite.json"

    write_pyperf_suite(path, [blocked])

    first, second = pyperf.BenchmarkSuite.load(str(path)).get_benchmark(blocked.name).get_runs()
    assert (first.values, second.values) == ((1.0, 1.1), (1.2, 1.3))
    assert (first.warmups, second.warmups) == (((1, 1.5),), ())


def test_a_benchmarks_own_metadata_wins_over_the_suites(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    write_pyperf_suite(path, [THREADS, SEQUENTIAL], metadata={"runner": "unknown", "gil": 0})

    suite = pyperf.BenchmarkSuite.load(str(path))
    assert suite.get_benchmark(THREADS.name).get_metadata()["runner"] == "threads"
    assert suite.get_benchmark(SEQUENTIAL.name).get_metadata()["gil"] == 0


def test_the_document_is_pyperf_format_one_and_is_what_gets_written(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    write_pyperf_suite(path, [THREADS], metadata=HOST)

    document = pyperf_suite([THREADS], metadata=HOST)
    assert document["version"] == "1.0"
    assert document == json.loads(path.read_text())


def test_a_gz_path_is_written_compressed_as_pyperf_expects(tmp_path: Path) -> None:
    path = tmp_path / "suite.json.gz"
    write_pyperf_suite(path, [THREADS])

    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert pyperf.BenchmarkSuite.load(str(path)).get_benchmark_names() == [THREADS.name]


def test_pyperf_stats_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    write_pyperf_suite(path, [THREADS, SEQUENTIAL], metadata=HOST)

    result = pyperf_cli("stats", path)

    assert result.returncode == 0, result.stderr
    assert THREADS.name in result.stdout
    assert SEQUENTIAL.name in result.stdout


def test_pyperf_compare_to_says_faster_or_not_significant(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    halved = PyperfBenchmark(
        THREADS.name, [value / 2 for value in THREADS.values], [], THREADS.metadata
    )
    write_pyperf_suite(before, [THREADS, SEQUENTIAL])
    write_pyperf_suite(after, [halved, SEQUENTIAL])

    result = pyperf_cli("compare_to", before, after)

    assert result.returncode == 0, result.stderr
    assert "faster" in result.stdout
    assert f"not significant (1): {SEQUENTIAL.name}" in result.stdout


def test_duplicate_names_are_refused_naming_the_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    with pytest.raises(ValueError, match="resize sequential"):
        write_pyperf_suite(path, [SEQUENTIAL, THREADS, SEQUENTIAL])
    assert not path.exists()


@pytest.mark.parametrize(
    ("benchmark", "message"),
    [
        (PyperfBenchmark("empty", [], [1.0], {}), "'empty' has no measured values"),
        (PyperfBenchmark("zero", [0.0], [], {}), "'zero'.*> 0"),
        (PyperfBenchmark("in bytes", [1.0], [], {"unit": "byte"}), "'in bytes'.*unit"),
        # pyperf types the keys it knows: loops is an int >= 1.
        (PyperfBenchmark("looped", [1.0], [], {"loops": "3"}), "'looped'.*loops"),
    ],
)
def test_invalid_benchmarks_are_refused_naming_the_benchmark(
    benchmark: PyperfBenchmark, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pyperf_suite([benchmark])


@pytest.mark.parametrize("key", ["name", "unit"])
def test_suite_metadata_may_not_set_what_the_export_owns(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        pyperf_suite([THREADS], metadata={key: "x"})


def test_an_empty_suite_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        pyperf_suite([])
