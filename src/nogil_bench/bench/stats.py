"""pyperf-style summaries: median and spread, and what parallel speedup means."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A run whose standard deviation passes this share of its median is flagged, not trusted.
NOISY_STDEV_RATIO = 0.10


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
