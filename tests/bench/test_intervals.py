"""The engine's intervals: rounds inside blocks of fresh processes, the variance of each level,
and where a rerun's ratio lands. Fixed data, and simulations with fixed seeds: never timings.

The simulations draw log ratios as a two-level random effect, as Kalibera and Jones model a
benchmark: each block (a fresh set of processes) shifts every round it runs by a draw with
standard deviation `between`, and each round adds its own draw with standard deviation
`within`. A measurement is many comparisons at once, sharing the pooled between-blocks
variance, as the engine's are.
"""

import math
import random
import statistics
from dataclasses import dataclass

import pytest

from nogil_bench.bench.stats import (
    Between,
    Levels,
    Verdict,
    compare_blocks,
    levels,
    median_interval,
    pool_between,
    rerun_interval,
    student_t_within,
    t_quantile,
)


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706), (10, 2.2281), (30, 2.0423)],
)
def test_student_t_quantiles_match_the_published_tables(df: int, quantile: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(quantile, abs=1e-4)
    assert student_t_within(quantile, df) == pytest.approx(0.95, abs=1e-5)


def test_the_levels_split_rounds_from_blocks() -> None:
    # Two blocks: log ratios 0, 0.2 (mean 0.1) and 0.4, 0.6 (mean 0.5).
    ratios = [math.exp(value) for value in (0.0, 0.2, 0.4, 0.6)]

    found = levels(ratios, [0, 0, 1, 1])

    assert found.mean == pytest.approx(0.3)  # the mean of the blocks' means
    assert (found.blocks, found.rounds, found.within_df) == (2, 4, 2)
    assert found.within == pytest.approx(0.02)  # (0.01 * 4) / 2
    # The block means' variance, 0.08, less the rounds' share in it, 0.02 / 2.
    assert found.between == pytest.approx(0.07)


def test_one_block_has_no_estimate_of_what_changes_between_processes() -> None:
    found = levels([1.0, 1.1, 1.2], [0, 0, 0])

    assert found.between is None
    assert pool_between([found]) is None
    assert rerun_interval(found, Between(0.0, 10)) is None


def test_the_pool_is_the_mean_of_the_comparisons_estimates_each_at_least_zero() -> None:
    noisy = levels([math.exp(v) for v in (0.0, 0.2, 0.4, 0.6)], [0, 0, 1, 1])  # 0.07
    quiet = levels([math.exp(v) for v in (0.0, 0.2, 0.2, 0.0)], [0, 0, 1, 1])  # below zero

    pooled = pool_between([noisy, quiet])

    assert quiet.between is not None
    assert quiet.between < 0
    assert pooled is not None
    assert pooled.variance == pytest.approx(0.035)
    assert pooled.df == 2


def test_the_rerun_interval_adds_both_levels_and_doubles_for_the_reruns_own_error() -> None:
    found = Levels(
        mean=0.5, blocks=2, rounds=10, mean_inverse_rounds=0.2, within=0.01, within_df=8,
        between=None,
    )  # fmt: skip
    pooled = Between(variance=0.002, df=40)

    interval = rerun_interval(found, pooled)

    assert interval is not None
    rounds_part, blocks_part = 0.01 * 0.2 / 2, 0.002 / 2
    variance = rounds_part + blocks_part
    df = math.floor(variance**2 / (rounds_part**2 / 8 + blocks_part**2 / 40))
    half = t_quantile(0.95, df) * math.sqrt(2 * variance)
    assert interval.df == df == 26  # 0.002^2 / (0.001^2 / 8 + 0.001^2 / 40), rounded down
    assert (interval.low, interval.ratio, interval.high) == pytest.approx(
        (math.exp(0.5 - half), math.exp(0.5), math.exp(0.5 + half))
    )


def test_a_comparison_reads_its_interval_in_words() -> None:
    ratios = [1.55, 1.6, 1.62, 1.64, 1.6, 1.7]
    found = levels(ratios, [0, 0, 0, 1, 1, 1])

    comparison = compare_blocks("sequential", "threads w=2", found, pool_between([found]))

    assert comparison.verdict is Verdict.FASTER
    assert (comparison.n, comparison.blocks) == (6, 2)
    assert comparison.ratio == pytest.approx(statistics.geometric_mean(ratios))
    assert comparison.text.startswith("faster by 62% [")


def test_without_two_blocks_there_is_no_interval_and_no_verdict() -> None:
    found = levels([2.0, 2.1, 1.9], [0, 0, 0])

    comparison = compare_blocks("a", "b", found, pool_between([found]))

    assert comparison.verdict is Verdict.UNKNOWN
    assert comparison.ci_low is None
    assert comparison.text == (
        "2.00x, no interval from 1 block(s) of 3 rounds (needs 2 blocks and 2 rounds in one)"
    )


@dataclass(frozen=True)
class Scenario:
    between: list[float]  # each comparison's between-blocks standard deviation (log ratio)
    within: list[float]  # each comparison's round-to-round standard deviation


def simulate(rng: random.Random, scenario: Scenario, blocks: int, rounds: int) -> list[Levels]:
    """One measurement: every comparison's log ratios around a true ratio of 1x."""
    measured = []
    for between, within in zip(scenario.between, scenario.within, strict=True):
        ratios, labels = [], []
        for block in range(blocks):
            shift = rng.gauss(0.0, between)
            for _ in range(rounds):
                ratios.append(math.exp(shift + rng.gauss(0.0, within)))
                labels.append(block)
        measured.append(levels(ratios, labels))
    return measured


@dataclass(frozen=True)
class Coverage:
    rerun_inside: list[float]  # per comparison: the share of reruns inside the first interval
    truth_inside: float  # over all: the share of intervals holding the true ratio, 1x
    median_width: float

    @property
    def rerun_overall(self) -> float:
        return statistics.fmean(self.rerun_inside)


def coverage(scenario: Scenario, blocks: int, rounds: int, trials: int = 150) -> Coverage:
    """Back-to-back pairs of measurements: how often the second's ratios land inside the
    first's intervals."""
    rng = random.Random(20261202)  # noqa: S311 -- fixed: the same draws every time
    inside = [0] * len(scenario.between)
    truth = 0
    widths = []
    for _ in range(trials):
        first = simulate(rng, scenario, blocks, rounds)
        second = simulate(rng, scenario, blocks, rounds)
        pooled = pool_between(first)
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            interval = rerun_interval(a, pooled)
            assert interval is not None
            inside[index] += interval.low <= math.exp(b.mean) <= interval.high
            truth += interval.low <= 1.0 <= interval.high
            widths.append((interval.high - interval.low) / interval.ratio)
    count = trials * len(inside)
    return Coverage([n / trials for n in inside], truth / count, statistics.median(widths))


COMPARISONS = 30


@pytest.mark.parametrize(
    ("name", "between", "within"),
    [
        ("nothing changes between processes", 0.0, 0.11),
        ("processes differ a little", 0.03, 0.11),
        ("processes differ more than rounds do", 0.10, 0.05),
    ],
)
@pytest.mark.parametrize(("blocks", "rounds"), [(2, 5), (3, 3)])
def test_a_reruns_ratio_lands_inside_the_interval_95_percent_of_the_time(
    name: str, between: float, within: float, blocks: int, rounds: int
) -> None:
    scenario = Scenario([between] * COMPARISONS, [within] * COMPARISONS)

    found = coverage(scenario, blocks, rounds)

    # At least what it claims; a little more, as the pool leans wide (pool_between).
    assert 0.94 <= found.rerun_overall <= 0.99, name
    assert found.truth_inside >= 0.95, name  # and it holds the true ratio at least as often


def test_comparisons_noisier_across_processes_than_the_rest_are_still_mostly_covered() -> None:
    # Half the comparisons do not change between processes, half change by 6%.
    half = COMPARISONS // 2
    scenario = Scenario([0.0] * half + [0.06] * half, [0.11] * COMPARISONS)

    found = coverage(scenario, blocks=2, rounds=5)

    noisier = statistics.fmean(found.rerun_inside[half:])
    assert noisier >= 0.90
    assert found.rerun_overall >= 0.95


def test_the_interval_widens_with_the_noise_it_measures() -> None:
    quiet = coverage(Scenario([0.01] * COMPARISONS, [0.03] * COMPARISONS), 2, 5, trials=30)
    noisy = coverage(Scenario([0.05] * COMPARISONS, [0.15] * COMPARISONS), 2, 5, trials=30)

    assert quiet.median_width < 0.15 < noisy.median_width


def test_one_process_per_configuration_misses_reruns_when_processes_differ() -> None:
    """The engine before blocks: every round of a configuration in one process, and the exact
    interval for the median of its rounds, as if they were independent. Whatever one process
    draws is in every round, so the interval is too narrow, and reruns fall outside it."""
    rng = random.Random(20261202)  # noqa: S311 -- fixed: the same draws every time
    trials, rounds = 1000, 12
    inside = 0
    for _ in range(trials):
        first, second = (
            [math.exp(shift + rng.gauss(0.0, 0.03)) for _ in range(rounds)]
            for shift in (rng.gauss(0.0, 0.05), rng.gauss(0.0, 0.05))
        )
        interval = median_interval(first)
        assert interval is not None
        inside += interval.low <= statistics.median(second) <= interval.high

    assert inside / trials < 0.5  # promised 95%
