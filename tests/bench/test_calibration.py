"""The calibration figures of two measurements, the Markdown report, and the JSON document:
fixed rows, never timings."""

import json
import math
from pathlib import Path

import pytest

from nogil_bench.bench.calibration import calibrate, expected_agreement
from nogil_bench.bench.document import (
    DocumentFormatError,
    from_json,
    load_document,
    to_json,
    write_document,
)
from nogil_bench.bench.report import compare, markdown
from nogil_bench.bench.results import (
    Design,
    Finding,
    Kind,
    Measurement,
    Row,
    StopReason,
    analyse,
)
from nogil_bench.bench.stats import Between, Levels, compare_blocks, mean_variance
from tests.utils.bench_rows import row

SEQUENTIAL = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]


def measurement(rows: list[Row], stop: StopReason = StopReason.BOUND) -> Measurement:
    return Measurement(
        rows=rows,
        findings=analyse(rows),
        rounds=len(rows[0].runs),
        blocks=rows[0].blocks,
        design=Design(min_blocks=2, max_blocks=4, block_rounds=3),
        stop=stop,
        steal_share=0.004,
        duration_s=95.0,
        environment={"cpu_count": 2, "workloads": {"pure-python": "8 images 96x96"}},
    )


def run(threads_speedups: list[float], processes_speedups: list[float]) -> Measurement:
    """A measurement whose per-round speedups are exactly the ones given."""
    return measurement(
        [
            row("sequential", 1, SEQUENTIAL, gil=0),
            row("threads", 2, [2.0 / s for s in threads_speedups], gil=0),
            row("processes", 2, [2.0 / s for s in processes_speedups], gil=0),
            row("sequential", 1, SEQUENTIAL, gil=1),
            row("threads", 2, [2.0 / s * 2 for s in threads_speedups], gil=1),
        ]
    )


A = run([1.5, 1.55, 1.6, 1.6, 1.65, 1.7], [0.9, 0.95, 1.0, 1.0, 1.05, 1.1])


def test_b_inside_as_intervals_and_agreeing_verdicts_meet_the_targets_in_every_kind() -> None:
    b = run([1.58, 1.6, 1.62, 1.62, 1.63, 1.64], [0.97, 0.98, 1.0, 1.01, 1.02, 1.03])

    result = calibrate(A.findings, b.findings)

    # Speedups: threads and processes at GIL=0, threads at GIL=1; GIL=0 vs GIL=1 for
    # sequential and threads; processes vs threads.
    by_kind = {found.kind: (found.comparisons, found.inside, found.agree) for found in result.kinds}
    assert by_kind == {
        Kind.SPEEDUP: (3, 3, 3),
        Kind.GIL: (2, 2, 2),
        Kind.RUNNER: (1, 1, 1),
    }
    assert (result.total.comparisons, result.total.opposite) == (6, 0)
    assert result.met is True
    assert result.total.median_width_first == pytest.approx(0.185, abs=0.001)


def test_a_ratio_outside_the_first_interval_and_a_changed_verdict_are_counted_by_kind() -> None:
    b = run([1.6, 1.62, 1.65, 1.66, 1.68, 1.7], [1.1, 1.12, 1.15, 1.15, 1.16, 1.2])

    result = calibrate(A.findings, b.findings)

    # processes: 1.15x lies outside A's [0.90, 1.11], and "faster" is not "no difference";
    # against threads, 0.69x lies outside A's [0.57, 0.68].
    speedups, _, runners = result.kinds
    assert (speedups.inside, speedups.agree, runners.inside) == (2, 2, 0)
    assert result.total.inside_share == pytest.approx(4 / 6)
    assert result.total.opposite == 0
    assert result.met is False


def test_faster_in_one_run_and_slower_in_the_other_is_an_opposite_verdict() -> None:
    # Processes as fast as threads were in A, and threads as slow as processes were.
    b = run([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.6, 1.6, 1.6, 1.6, 1.6, 1.6])

    result = calibrate(A.findings, b.findings)

    assert result.total.opposite == 1  # processes vs threads: slower in A, faster in B
    assert result.met is False


def test_compare_prints_each_kinds_calibration_against_its_targets() -> None:
    b = run([1.6, 1.62, 1.65, 1.66, 1.68, 1.7], [1.1, 1.12, 1.15, 1.15, 1.16, 1.2])

    output = compare(A, b)

    assert "| vs sequential | 2 of 3 (66.7%) | 2 of 3 (66.7%) | 0 | 18.9% |" in output
    assert "| vs threads | 0 of 1 (0.0%) | 1 of 1 (100.0%) | 0 | 18.1% |" in output
    assert "| **all** | 4 of 6 (66.7%) | 5 of 6 (83.3%) | 0 | 18.5% |" in output
    assert (
        "Targets: B inside A's interval >= 90% in every kind (lowest: 0.0%, **not met**); "
        "verdicts agree >= 95% (83.3%, **not met**); 0 opposite (0, met); median width <= 30% "
        "(A 18.5%, met). **Not calibrated** on this host." in output
    )
    assert "Between the runs: a standard deviation of 4.7% of a log ratio beyond" in output
    assert (
        "| vs threads: pure-python processes w=2 GIL=0 (3.14.7t) vs pure-python threads w=2 "
        "GIL=0 (3.14.7t) | 0.62x [0.57, 0.68] | 0.69x | **no** |" in output
    )
    assert "- vs sequential: pure-python processes w=2 GIL=0 (3.14.7t)" in output  # fmt: skip
    assert "Verdicts expected to agree at this precision: " in output


def speedup(log_ratio: float) -> Finding:
    """A speedup measured in 2 blocks of 5 rounds whose mean log ratio is `log_ratio`."""
    found = Levels(
        mean=log_ratio,
        blocks=2,
        rounds=10,
        mean_inverse_rounds=0.2,
        within=0.04,
        within_df=8,
        between=0.0,
    )
    pooled = Between(0.0, 10)
    return Finding(
        Kind.SPEEDUP,
        "fib",
        compare_blocks("sequential", "threads", found, pooled),
        found,
        mean_variance(found, pooled),
    )


def test_verdicts_near_a_threshold_are_expected_to_flip_half_the_time() -> None:
    high = speedup(0.0).comparison.ci_high
    assert high is not None
    threshold = math.log(high)  # a ratio this far above 1x has its interval end at 1x
    at_threshold, far_above, none = speedup(threshold), speedup(5 * threshold), speedup(0.0)

    assert expected_agreement([(far_above, far_above)]) == pytest.approx(1.0, abs=1e-6)
    assert expected_agreement([(none, none)]) == pytest.approx(1.0, abs=0.01)
    # Faster or no significant difference, one chance in two each, in each run.
    assert expected_agreement([(at_threshold, at_threshold)]) == pytest.approx(0.5, abs=0.01)
    assert expected_agreement([(far_above, far_above), (at_threshold, at_threshold)]) == (
        pytest.approx(0.75, abs=0.01)
    )


def test_the_report_gives_speedups_with_ci_ceiling_share_verdicts_and_steal() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL),
        row("ceiling", 2, [2.0 / s for s in [1.8, 1.8, 1.85, 1.9, 1.9, 1.95]]),
        row("threads", 2, [2.0 / s for s in [1.55, 1.6, 1.62, 1.62, 1.65, 1.7]], steal=0.01),
    ]

    output = markdown(measurement(rows))

    assert output.startswith(
        "2 blocks of fresh worker processes, 3 rounds in each (minimum 2 blocks, bound 4), "
        "6 rounds in 95 s; stopped at the bound of 2 blocks of 6 rounds"
    )
    assert "between fresh processes as the intervals take it (pooled with each" in output
    assert "at least 0, 3 degrees of freedom;" in output
    assert "Host CPU steal during the rounds: 0.4%" in output
    assert "### pure-python: 8 images 96x96" in output
    threads = next(line for line in output.splitlines() if "| threads | 2 |" in line)
    assert "| 1.62x [1.50, 1.76] | faster by 62% [50%, 76%] |" in threads
    assert "| 87% [" in threads  # 1.62 / 1.87 of the ceiling
    assert "| 1.0% |" in threads  # steal


def test_the_report_has_a_gil_table_and_a_runner_table_with_verdicts() -> None:
    output = markdown(A)

    assert "### GIL=0 vs GIL=1 (the same configuration)" in output
    assert (
        "| pure-python | 3.14.7t | 0 | threads | 2 | threads GIL=1 3.14.7t | faster by 100%"
        in output
    )
    assert "### Each runner vs threads at the same worker count" in output
    assert (
        "| pure-python | 3.14.7t | 0 | processes | 2 | threads GIL=0 3.14.7t | slower by" in output
    )


def test_the_document_keeps_every_round_and_re_derives_the_comparisons(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_document(path, A)

    saved = json.loads(path.read_text())
    loaded = load_document(path)

    threads = saved["configurations"][1]
    assert threads["wall_s"] == A.rows[1].wall_s  # round by round, aligned with every row
    assert threads["blocks"] == [0, 0, 0, 1, 1, 1]  # and the block each round ran in
    assert (saved["rounds"], saved["blocks"], saved["design"]["block_rounds"]) == (6, 2, 3)
    assert threads["speedup"]["verdict"] == "faster"
    assert {c["kind"] for c in saved["comparisons"]} == {
        "vs sequential",
        "GIL=0 vs GIL=1",
        "vs threads",
    }
    assert saved["stop_text"].startswith("stopped at the bound")
    assert loaded.findings == A.findings
    assert loaded.rows[1].wall_s == A.rows[1].wall_s
    assert to_json(loaded) == saved


def test_a_document_of_the_previous_engine_is_refused_saying_so() -> None:
    with pytest.raises(DocumentFormatError, match="previous engine"):
        from_json({"environment": {}, "results": []})


def test_a_document_from_before_blocks_is_refused_saying_why() -> None:
    with pytest.raises(DocumentFormatError, match=r"before blocks .* measure again"):
        from_json({"format": 2, "configurations": []})
