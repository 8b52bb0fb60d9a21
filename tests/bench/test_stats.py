"""Summaries, the exact CI for the median, and verdicts: fixed data, never timings."""

import random
import statistics
from collections.abc import Callable

import pytest

from nogil_bench.bench.stats import (
    Summary,
    Verdict,
    binomial_cdf,
    compare,
    converged,
    efficiency,
    karp_flatt,
    median_interval,
    paired_ratios,
    percentile,
    speedup,
    summarize,
)


def test_a_summary_gives_median_and_three_measures_of_spread() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])

    assert summary.median == 3.0
    assert summary.iqr == 2.0  # quartiles 2 and 4: the outlier barely moves it
    assert summary.mad == 1.0
    assert summary.stdev == pytest.approx(43.6176, rel=1e-4)
    assert summary.runs == 5


def test_a_large_spread_is_flagged_as_noisy_instead_of_trusted() -> None:
    assert summarize([1.0, 1.01, 0.99]).noisy is False
    assert summarize([1.0, 1.5, 0.7]).noisy is True


def test_one_run_has_no_spread() -> None:
    assert summarize([2.0]) == Summary(2.0, 0.0, 0.0, 0.0, 1)


def test_zero_runs_cannot_be_summarized() -> None:
    with pytest.raises(ValueError, match="zero runs"):
        summarize([])


def test_speedup_and_efficiency() -> None:
    assert speedup(4.0, 2.5) == 1.6
    assert efficiency(1.6, 2) == 0.8


@pytest.mark.parametrize(
    ("speedup_x", "workers", "serial_fraction"),
    [(2.0, 2, 0.0), (1.0, 2, 1.0), (1.6, 2, 0.25), (3.0, 4, 1 / 9)],
)
def test_karp_flatt_is_the_experimentally_determined_serial_fraction(
    speedup_x: float, workers: int, serial_fraction: float
) -> None:
    assert karp_flatt(speedup_x, workers) == pytest.approx(serial_fraction)


def test_karp_flatt_is_undefined_for_one_worker() -> None:
    assert karp_flatt(1.0, 1) is None


def test_percentiles_use_the_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]

    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 1) == 1.0


def test_the_binomial_distribution_is_exact() -> None:
    assert binomial_cdf(0, 6) == 1 / 64
    assert binomial_cdf(1, 10) == 11 / 1024
    assert binomial_cdf(-1, 10) == 0.0
    assert binomial_cdf(10, 10) == 1.0


@pytest.mark.parametrize(
    ("n", "rank", "coverage"),
    [
        (6, 1, 1 - 2 / 64),  # min..max
        (10, 2, 1 - 2 * 11 / 1024),  # the 2nd smallest to the 2nd largest
        (12, 3, 1 - 2 * 79 / 4096),
        (30, 10, 0.9572260547),  # x_(10)..x_(21), as in the published tables
    ],
)
def test_the_median_ci_uses_the_binomial_order_statistics(
    n: int, rank: int, coverage: float
) -> None:
    values = [float(value) for value in range(n, 0, -1)]  # unsorted on purpose

    interval = median_interval(values)

    assert interval is not None
    assert (interval.rank, interval.low, interval.high) == (rank, rank, n - rank + 1)
    assert interval.coverage == pytest.approx(coverage)
    assert interval.coverage >= 0.95


@pytest.mark.parametrize("n", [0, 1, 5])
def test_below_six_values_there_is_no_95_percent_ci_for_the_median(n: int) -> None:
    assert median_interval([1.0] * n) is None


@pytest.mark.parametrize(
    ("name", "draw", "true_median"),
    [
        ("uniform", lambda rng: rng.uniform(1.0, 2.0), 1.5),
        ("exponential (skewed)", lambda rng: 1.0 + rng.expovariate(1.0), 1.0 + 0.6931471805599453),
        ("lognormal (heavy tail)", lambda rng: rng.lognormvariate(0.0, 0.5), 1.0),
    ],
)
def test_the_ci_covers_the_true_median_as_often_as_it_claims_whatever_the_distribution(
    name: str, draw: Callable[[random.Random], float], true_median: float
) -> None:
    rng = random.Random(20261123)  # noqa: S311 -- fixed: the same samples every time
    trials, n = 4000, 10
    covered = 0
    for _ in range(trials):
        interval = median_interval([draw(rng) for _ in range(n)])
        assert interval is not None
        covered += interval.low <= true_median <= interval.high

    assert covered / trials == pytest.approx(1 - 2 * 11 / 1024, abs=0.01), name


def test_ratios_pair_each_round_baseline_over_candidate() -> None:
    assert paired_ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    with pytest.raises(ValueError, match="differ in length"):
        paired_ratios([1.0], [1.0, 2.0])


def test_a_ci_wholly_above_one_says_faster_by_the_median_ratio() -> None:
    ratios = [1.55, 1.60, 1.62, 1.62, 1.64, 1.70]

    comparison = compare("sequential", "threads w=2", ratios)

    assert comparison.verdict is Verdict.FASTER
    assert comparison.ratio == 1.62
    assert (comparison.ci_low, comparison.ci_high) == (1.55, 1.70)
    assert comparison.coverage == pytest.approx(0.96875)
    assert comparison.text == "faster by 62% [55%, 70%]"


def test_a_ci_wholly_below_one_says_slower_in_time_taken() -> None:
    comparison = compare("GIL=0", "GIL=1", [0.78, 0.79, 0.80, 0.80, 0.81, 0.82])

    assert comparison.verdict is Verdict.SLOWER
    # 0.8x speed is 25% more time; the interval's ends swap when inverted.
    assert comparison.text == "slower by 25% [22%, 28%]"


def test_a_ci_that_straddles_one_is_no_significant_difference() -> None:
    comparison = compare("threads", "asyncio", [0.97, 0.99, 1.0, 1.01, 1.02, 1.04])

    assert comparison.verdict is Verdict.NO_DIFFERENCE
    assert comparison.text == "no significant difference (1.00x [0.97, 1.04])"


@pytest.mark.parametrize(
    ("low", "verdict"),
    [(1.0, Verdict.NO_DIFFERENCE), (1.001, Verdict.FASTER)],
)
def test_a_ci_touching_one_is_not_a_difference(low: float, verdict: Verdict) -> None:
    assert compare("a", "b", [low, 1.1, 1.1, 1.1, 1.1, 1.2]).verdict is verdict


def test_small_differences_keep_a_decimal() -> None:
    comparison = compare("a", "b", [1.02, 1.03, 1.034, 1.034, 1.04, 1.05])

    assert comparison.text == "faster by 3.4% [2.0%, 5.0%]"


def test_too_few_pairs_give_no_verdict_rather_than_a_pretended_one() -> None:
    comparison = compare("a", "b", [2.0, 2.0, 2.1, 2.0, 1.9])

    assert comparison.verdict is Verdict.UNKNOWN
    assert comparison.ci_low is None
    assert comparison.relative_half_width is None
    assert comparison.text == "2.00x, no CI from 5 pairs (needs 6)"


def test_the_median_ratio_is_the_median_of_pairs_not_a_ratio_of_medians() -> None:
    baseline, candidate = [1.0, 2.0, 3.0, 10.0, 10.0, 10.0], [1.0, 1.0, 1.0, 5.0, 20.0, 20.0]

    comparison = compare("a", "b", paired_ratios(baseline, candidate))

    assert comparison.ratio == statistics.median([1.0, 2.0, 3.0, 2.0, 0.5, 0.5]) == 1.5
    assert statistics.median(baseline) / statistics.median(candidate) != comparison.ratio


def test_measuring_stops_once_every_ci_is_within_the_target_half_width() -> None:
    tight = compare("a", "b", [1.98, 1.99, 2.0, 2.0, 2.01, 2.02])  # ±1%
    loose = compare("a", "c", [1.6, 1.9, 2.0, 2.0, 2.1, 2.4])  # ±20%
    unknown = compare("a", "d", [2.0] * 5)

    assert tight.relative_half_width == pytest.approx(0.01)
    assert converged([tight], target=0.05) is True
    assert converged([tight, loose], target=0.05) is False
    assert converged([tight, unknown], target=0.05) is False
    assert converged([], target=0.05) is True
