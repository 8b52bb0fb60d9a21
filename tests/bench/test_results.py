"""Which comparisons the engine makes between rows, paired round by round, and how it says why
it stopped. Fixed wall times, never measured ones."""

import pytest

from nogil_bench.bench.results import Kind, StopReason, analyse, describe_stop, mismatched_outputs
from nogil_bench.bench.stats import Verdict
from tests.utils.bench_rows import row

SEQUENTIAL = [2.0, 2.4, 2.0, 3.0, 2.0, 2.2]
# Each round's threads wall is the sequential one over 1.6, whatever the round's host speed.
THREADS = [wall / 1.6 for wall in SEQUENTIAL]
CEILING = [wall / 1.8 for wall in SEQUENTIAL]


def test_speedup_is_the_median_of_per_round_ratios_with_its_ci_and_verdict() -> None:
    rows = [row("sequential", 1, SEQUENTIAL), row("threads", 2, THREADS)]

    findings = analyse(rows)

    speedup = rows[1].speedup
    assert speedup is not None
    assert [finding.kind for finding in findings] == [Kind.SPEEDUP]
    assert findings[0].comparison is speedup
    assert speedup.ratio == pytest.approx(1.6)
    # Paired, the host's swings cancel: the interval is as narrow as the ratios are steady.
    assert speedup.ci_low == pytest.approx(1.6)
    assert speedup.ci_high == pytest.approx(1.6)
    assert speedup.verdict is Verdict.FASTER
    assert speedup.baseline == "pure-python sequential w=1 GIL=0 (3.14.7t)"
    assert rows[1].efficiency == pytest.approx(0.8)
    assert rows[1].karp_flatt == pytest.approx(0.25)


def test_each_parallel_row_is_read_as_a_share_of_the_hosts_ceiling_at_its_worker_count() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL),
        row("ceiling", 2, CEILING),
        row("threads", 2, THREADS),
        row("threads", 4, THREADS),  # no ceiling planned at 4 workers: no share
    ]

    analyse(rows)

    share = rows[2].ceiling_share
    assert share is not None
    assert share.ratio == pytest.approx(1.6 / 1.8)  # its speedup over the ceiling's, per round
    assert rows[1].speedup is not None
    assert rows[1].speedup.ratio == pytest.approx(1.8)
    assert rows[1].ceiling_share is None
    assert rows[3].ceiling_share is None


def test_each_configuration_is_compared_gil_off_against_gil_on() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL, gil=0),
        row("sequential", 1, SEQUENTIAL, gil=1),
        row("threads", 2, THREADS, gil=0),
        row("threads", 2, [wall / 0.8 for wall in SEQUENTIAL], gil=1),
    ]

    gil = [finding.comparison for finding in analyse(rows) if finding.kind is Kind.GIL]

    assert [(c.candidate, c.baseline) for c in gil] == [
        ("pure-python sequential w=1 GIL=0 (3.14.7t)",
         "pure-python sequential w=1 GIL=1 (3.14.7t)"),
        ("pure-python threads w=2 GIL=0 (3.14.7t)", "pure-python threads w=2 GIL=1 (3.14.7t)"),
    ]  # fmt: skip
    assert gil[0].verdict is Verdict.NO_DIFFERENCE
    assert gil[1].ratio == pytest.approx(2.0)
    assert gil[1].text == "faster by 100% [100%, 100%]"


def test_each_runner_is_compared_with_threads_at_the_same_worker_count() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL),
        row("threads", 2, THREADS),
        row("asyncio", 2, [wall * 1.25 for wall in THREADS]),
        row("processes", 4, THREADS),  # no threads at 4 workers
    ]

    runner = [finding.comparison for finding in analyse(rows) if finding.kind is Kind.RUNNER]

    assert len(runner) == 1
    assert runner[0].verdict is Verdict.SLOWER
    assert runner[0].text == "slower by 25% [25%, 25%]"


def test_another_interpreter_is_compared_in_each_gil_mode_the_free_threaded_build_has() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL, gil=0),
        row("sequential", 1, SEQUENTIAL, gil=1),
        row("sequential", 1, [wall * 0.8 for wall in SEQUENTIAL], gil=1, python="3.14.7"),
    ]

    python = [finding.comparison for finding in analyse(rows) if finding.kind is Kind.PYTHON]

    assert [c.baseline for c in python] == [
        "pure-python sequential w=1 GIL=0 (3.14.7t)",
        "pure-python sequential w=1 GIL=1 (3.14.7t)",
    ]
    assert all(c.candidate == "pure-python sequential w=1 GIL=1 (3.14.7)" for c in python)
    assert python[0].ratio == pytest.approx(1.25)


def test_the_ceiling_is_a_measure_of_the_host_not_a_configuration_to_compare() -> None:
    rows = [
        row("sequential", 1, SEQUENTIAL, gil=0),
        row("sequential", 1, SEQUENTIAL, gil=1),
        row("ceiling", 2, CEILING, gil=0),
        row("ceiling", 2, CEILING, gil=1),
    ]

    kinds = [finding.kind for finding in analyse(rows)]

    assert kinds.count(Kind.SPEEDUP) == 2
    assert kinds.count(Kind.GIL) == 1  # sequential only


def test_noise_is_flagged_on_the_row() -> None:
    assert row("threads", 2, [1.0, 1.5, 0.7] * 2).noisy is True  # stdev 33% of the median
    assert row("threads", 2, [1.0, 1.01, 0.99] * 2).noisy is False


def test_steal_is_the_median_over_the_rows_runs_where_the_host_reports_it() -> None:
    assert row("threads", 2, THREADS, steal=0.02).steal_share_median == 0.02
    assert row("threads", 2, THREADS, steal=None).steal_share_median is None


def test_the_stop_reason_is_stated_with_the_widest_interval() -> None:
    rows = [row("sequential", 1, SEQUENTIAL), row("threads", 2, [1.0, 1.1, 1.2, 1.3, 1.4, 1.5])]
    findings = analyse(rows)

    bound = describe_stop(StopReason.BOUND, findings, 4, 12, 0.05)
    converged = describe_stop(StopReason.CONVERGED, findings, 1, 3, 0.5)

    assert bound.startswith(
        "stopped at the bound of 4 blocks of 12 rounds: intervals wider than the ±5% target"
    )
    assert "widest ±" in bound
    assert converged.startswith(
        "stopped after 1 block of 3 rounds: every interval within the ±50% target"
    )
    assert "deadline" in describe_stop(StopReason.DEADLINE, findings, 1, 3, 0.05)
    assert "time budget" in describe_stop(StopReason.BUDGET, findings, 2, 6, 0.05)


def test_outputs_that_differ_between_configurations_are_reported() -> None:
    same = [
        row("sequential", 1, SEQUENTIAL, workload="fib"),
        row("threads", 2, THREADS, workload="fib"),
    ]
    differing = [row("sequential", 1, SEQUENTIAL), row("threads", 2, THREADS, digest="x")]

    assert mismatched_outputs(same + differing) == ["pure-python"]
