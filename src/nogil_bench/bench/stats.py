"""pyperf-style summaries, paired comparisons with an exact confidence interval, and verdicts.

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


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    NO_DIFFERENCE = "no significant difference"
    # Fewer than MIN_CI_SAMPLES pairs: no interval, so no claim either way.
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
