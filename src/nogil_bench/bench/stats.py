"""pyperf-style summaries, paired comparisons with confidence intervals, and verdicts.

Two intervals, for two kinds of data:
- independent pairs (scripts that time separate runs): the exact binomial interval for the
  median of their ratios (median_interval, compare);
- the engine's blocks (compare_blocks): rounds measured in one set of worker processes share
  whatever that set of processes drew (memory layout, allocator state, cores), so they are not
  independent of each other. The unit is the block, a fresh set of processes: each block's
  geometric-mean ratio is one value, and the interval is Student's t over those values' logs
  (Kalibera and Jones, "Rigorous Benchmarking in Reasonable Time", 2013: the variance of the
  top level's means carries every level's variance below it).

Pure functions on numbers: no clocks, no processes, so every figure here can be checked with
fixed data.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# A run whose standard deviation passes this share of its median is flagged, not trusted.
NOISY_STDEV_RATIO = 0.10
# Two-sided: each tail of the interval may hold at most 2.5%.
CONFIDENCE = 0.95
# The smallest sample whose min..max has 95% coverage for the median: 1 - 2 / 2**6 = 96.9%.
MIN_CI_SAMPLES = 6
# The fewest blocks with an interval: with one, what changes between processes is unmeasured.
MIN_CI_BLOCKS = 2


@dataclass(frozen=True, slots=True)
class Summary:
    median: float
    iqr: float
    mad: float
    stdev: float
    runs: int

    @property
    def stdev_ratio(self) -> float:
        return self.stdev / self.median if self.median else 0.0

    @property
    def noisy(self) -> bool:
        return self.stdev_ratio > NOISY_STDEV_RATIO


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("cannot summarize zero runs")
    median = statistics.median(values)
    if len(values) > 1:
        quartiles = statistics.quantiles(values, n=4, method="inclusive")
        iqr = quartiles[2] - quartiles[0]
        stdev = statistics.stdev(values)
    else:
        iqr = stdev = 0.0
    mad = statistics.median(abs(value - median) for value in values)
    return Summary(median, iqr, mad, stdev, len(values))


def speedup(baseline_s: float, wall_s: float) -> float:
    return baseline_s / wall_s


def efficiency(speedup_x: float, workers: int) -> float:
    return speedup_x / workers


def karp_flatt(speedup_x: float, workers: int) -> float | None:
    """The experimentally determined serial fraction; None for one worker, where it is 0/0."""
    if workers < 2:
        return None
    return (1 / speedup_x - 1 / workers) / (1 - 1 / workers)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile, 0 < pct <= 100."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class MedianInterval:
    """A distribution-free interval for the median: [x_(k), x_(n-k+1)] of the sorted sample."""

    low: float
    high: float
    # The interval's exact coverage (>= the confidence asked for): order statistics give a
    # discrete set of intervals, so the one chosen covers a little more than 95%.
    coverage: float
    rank: int  # k


def binomial_cdf(k: int, n: int) -> float:
    """P(Binom(n, 1/2) <= k), exactly (as exactly as a float holds it)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / float(2**n)


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> MedianInterval | None:
    """The exact binomial confidence interval for the median, or None when the sample is too
    small to have one (n < 6 at 95%: even min..max would cover less).

    Each value falls below the true median with probability 1/2, whatever the distribution, so
    the number below it is Binom(n, 1/2). The largest k with P(Binom <= k-1) <= (1-confidence)/2
    gives [x_(k), x_(n-k+1)], covering the median with probability 1 - 2 P(Binom <= k-1).
    """
    n = len(values)
    tail = (1 - confidence) / 2
    rank = 0
    while binomial_cdf(rank, n) <= tail:  # P(Binom <= (rank+1) - 1) <= tail: k = rank+1 works
        rank += 1
    if rank == 0:
        return None
    ordered = sorted(values)
    return MedianInterval(
        low=ordered[rank - 1],
        high=ordered[n - rank],
        coverage=1 - 2 * binomial_cdf(rank - 1, n),
        rank=rank,
    )


def paired_ratios(baseline_s: Sequence[float], candidate_s: Sequence[float]) -> list[float]:
    """Per round, baseline time / candidate time: > 1 means the candidate was faster. The two
    walls of a round were measured minutes apart at most, so they share the host's moment."""
    if len(baseline_s) != len(candidate_s):
        raise ValueError(
            f"paired samples differ in length: {len(baseline_s)} and {len(candidate_s)}"
        )
    return [
        baseline / candidate for baseline, candidate in zip(baseline_s, candidate_s, strict=True)
    ]


def student_t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` degrees of freedom, exactly, by the finite series
    for integer df (Abramowitz and Stegun 26.7.3 and 26.7.4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= 2 * k / (2 * k + 1) * cos2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term = total = 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, (df - 2) // 2 + 1):
        term *= (2 * k - 1) / (2 * k) * cos2
        total += term
    return math.sin(theta) * total


def t_quantile(confidence: float, df: int) -> float:
    """The t such that P(|T| <= t) = confidence (two-sided), by bisection on the exact CDF."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    low, high = 0.0, 1.0
    while student_t_within(high, df) < confidence:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if student_t_within(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True, slots=True)
class Levels:
    """One comparison's log ratios (log(baseline time / candidate time)) by level: rounds
    inside a block of processes, and blocks (fresh sets of processes)."""

    mean: float  # the mean of the blocks' means: the log of the reported ratio
    blocks: int
    rounds: int
    mean_inverse_rounds: float  # the mean over blocks of 1 / (its rounds)
    # The pooled variance of rounds about their block's mean, and its degrees of freedom
    # (rounds - blocks): what changes from round to round in one set of processes.
    within: float
    within_df: int
    # The variance of the block means less what the rounds' own variance puts into them: this
    # comparison's estimate of what changes between fresh sets of processes (negative when
    # the rounds' noise explains it all; None with one block). Pooled, see pool_between.
    between: float | None

    @property
    def between_df(self) -> int:
        return self.blocks - 1


def levels(ratios: Sequence[float], blocks: Sequence[int]) -> Levels:
    """`blocks[i]` names the block (fresh set of processes) that measured ratios[i]."""
    if len(ratios) != len(blocks):
        raise ValueError(f"{len(ratios)} ratios but {len(blocks)} block labels")
    if not ratios:
        raise ValueError("no ratios")
    by_block: dict[int, list[float]] = {}
    for ratio, block in zip(ratios, blocks, strict=True):
        by_block.setdefault(block, []).append(math.log(ratio))
    means = [statistics.fmean(values) for values in by_block.values()]
    squares = sum(
        (value - mean) ** 2
        for values, mean in zip(by_block.values(), means, strict=True)
        for value in values
    )
    within_df = len(ratios) - len(means)
    within = squares / within_df if within_df else 0.0
    mean_inverse_rounds = statistics.fmean(1 / len(values) for values in by_block.values())
    between = statistics.variance(means) - within * mean_inverse_rounds if len(means) > 1 else None
    return Levels(
        mean=statistics.fmean(means),
        blocks=len(means),
        rounds=len(ratios),
        mean_inverse_rounds=mean_inverse_rounds,
        within=within,
        within_df=within_df,
        between=between,
    )


@dataclass(frozen=True, slots=True)
class Between:
    """The between-blocks variance pooled over a measurement's comparisons, with its degrees of
    freedom: one comparison with two blocks has a single degree of freedom, fifty have fifty."""

    variance: float
    df: int

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)


def pool_between(all_levels: Sequence[Levels]) -> Between | None:
    """The mean over comparisons of their own between-blocks estimates, each taken as zero
    where negative. With two or three blocks, one comparison's own estimate has a degree of
    freedom or two: far too few to build its interval on (t with 1 degree of freedom is 12.7),
    so every comparison of a measurement shares the pool. Clipping each at zero leans the pool
    wide on purpose, so that a comparison noisier across processes than the others is less
    often under-covered (the simulations in tests/bench/test_stats.py show both).

    None when no comparison has two blocks: what changes between processes is unknown."""
    known = [found.between for found in all_levels if found.between is not None]
    if not known:
        return None
    dfs = sum(found.between_df for found in all_levels if found.between is not None)
    return Between(statistics.fmean(max(0.0, between) for between in known), dfs)


@dataclass(frozen=True, slots=True)
class RerunInterval:
    """Where the ratio of a rerun of the same measurement lands, 95% of the time."""

    ratio: float
    low: float
    high: float
    df: int


@dataclass(frozen=True, slots=True)
class MeanVariance:
    """The variance of a comparison's mean log ratio, summed over the levels, with its
    Welch-Satterthwaite degrees of freedom (rounded down, at least 1)."""

    variance: float
    df: int


def mean_variance(found: Levels, pooled: Between | None) -> MeanVariance | None:
    """Var(mean) summing the levels (Kalibera and Jones 2013): the rounds' variance over the
    rounds, and the measurement's pooled between-blocks variance over the blocks; degrees of
    freedom by Welch and Satterthwaite.

    None with fewer than MIN_CI_BLOCKS blocks, or no round-to-round degrees of freedom."""
    if found.blocks < MIN_CI_BLOCKS or found.within_df < 1 or pooled is None:
        return None
    rounds_part = found.within * found.mean_inverse_rounds / found.blocks
    blocks_part = pooled.variance / found.blocks
    variance = rounds_part + blocks_part
    if variance == 0:
        return MeanVariance(0.0, found.within_df)
    df = variance**2 / (
        rounds_part**2 / found.within_df + (blocks_part**2 / pooled.df if pooled.df else 0.0)
    )
    return MeanVariance(variance, max(1, math.floor(df)))


def rerun_interval(
    found: Levels, pooled: Between | None, confidence: float = CONFIDENCE
) -> RerunInterval | None:
    """The prediction interval for a rerun's ratio: exp(mean +- t * sqrt(2 Var(mean))), with
    Var(mean) from mean_variance. A rerun has its own error, as large as this run's, hence the
    2: a 95% CI of the true ratio would hold a rerun's ratio only about 83% of the time (and
    this interval holds the true ratio more than 95% of the time)."""
    spread = mean_variance(found, pooled)
    if spread is None:
        return None
    half = t_quantile(confidence, spread.df) * math.sqrt(2 * spread.variance)
    return RerunInterval(
        math.exp(found.mean), math.exp(found.mean - half), math.exp(found.mean + half), spread.df
    )


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    NO_DIFFERENCE = "no significant difference"
    # Fewer than MIN_CI_SAMPLES pairs (MIN_CI_BLOCKS blocks): no interval, so no claim.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Comparison:
    """The candidate against the baseline: median of the per-round ratios, its 95% CI and what
    that says, in words a reader can quote."""

    baseline: str
    candidate: str
    n: int
    ratio: float
    ci_low: float | None
    ci_high: float | None
    coverage: float | None
    verdict: Verdict
    text: str
    # Fresh sets of worker processes the pairs came from (compare_blocks); None for
    # independent pairs (compare).
    blocks: int | None = None

    @property
    def relative_half_width(self) -> float | None:
        """Half the CI's width as a share of the ratio: the precision the adaptive stop targets."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2 / self.ratio

    def contains(self, ratio: float) -> bool:
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low <= ratio <= self.ci_high)
        )


def compare(baseline: str, candidate: str, ratios: Sequence[float]) -> Comparison:
    """A verdict from per-pair ratios (baseline time / candidate time), like pyperf compare_to:
    faster only when the whole interval is above 1, slower only when it is below."""
    if not ratios:
        raise ValueError(f"{candidate} vs {baseline}: no pairs to compare")
    ratio = statistics.median(ratios)
    interval = median_interval(ratios)
    if interval is None:
        return Comparison(
            baseline,
            candidate,
            len(ratios),
            ratio,
            None,
            None,
            None,
            Verdict.UNKNOWN,
            f"{ratio:.2f}x, no CI from {len(ratios)} pairs (needs {MIN_CI_SAMPLES})",
        )
    verdict = verdict_of(interval.low, interval.high)
    return Comparison(
        baseline,
        candidate,
        len(ratios),
        ratio,
        interval.low,
        interval.high,
        interval.coverage,
        verdict,
        describe(verdict, ratio, interval.low, interval.high),
    )


def compare_blocks(
    baseline: str, candidate: str, found: Levels, pooled: Between | None
) -> Comparison:
    """A verdict from one comparison's levels (levels()) and the measurement's pooled
    between-blocks variance (pool_between()): the geometric mean ratio and its rerun interval
    (rerun_interval). Faster only when a rerun would land above 1x too, 95% of the time."""
    interval = rerun_interval(found, pooled)
    if interval is None:
        ratio = math.exp(found.mean)
        return Comparison(
            baseline,
            candidate,
            found.rounds,
            ratio,
            None,
            None,
            None,
            Verdict.UNKNOWN,
            f"{ratio:.2f}x, no interval from {found.blocks} block(s) of "
            f"{found.rounds} rounds (needs {MIN_CI_BLOCKS} blocks and 2 rounds in one)",
            blocks=found.blocks,
        )
    verdict = verdict_of(interval.low, interval.high)
    return Comparison(
        baseline,
        candidate,
        found.rounds,
        interval.ratio,
        interval.low,
        interval.high,
        CONFIDENCE,
        verdict,
        describe(verdict, interval.ratio, interval.low, interval.high),
        blocks=found.blocks,
    )


def verdict_of(ci_low: float, ci_high: float) -> Verdict:
    if ci_low > 1:
        return Verdict.FASTER
    if ci_high < 1:
        return Verdict.SLOWER
    return Verdict.NO_DIFFERENCE


def describe(verdict: Verdict, ratio: float, ci_low: float, ci_high: float) -> str:
    """'faster by 62% [55%, 70%]': the bigger quantity's growth, so that faster and slower read
    alike. Faster is speed (ratio - 1); slower is time (1/ratio - 1): 0.8x is "slower by 25%"."""
    match verdict:
        case Verdict.FASTER:
            return f"faster by {_pct(ratio - 1)} [{_pct(ci_low - 1)}, {_pct(ci_high - 1)}]"
        case Verdict.SLOWER:
            return (
                f"slower by {_pct(1 / ratio - 1)} [{_pct(1 / ci_high - 1)}, {_pct(1 / ci_low - 1)}]"
            )
        case _:
            return f"no significant difference ({ratio:.2f}x [{ci_low:.2f}, {ci_high:.2f}])"


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%" if abs(share) >= 0.1 else f"{share * 100:.1f}%"


def converged(comparisons: Sequence[Comparison], target: float) -> bool:
    """True when every comparison has a CI whose half-width is within `target` of its ratio."""
    for comparison in comparisons:
        half_width = comparison.relative_half_width
        if half_width is None or half_width > target:
            return False
    return True
