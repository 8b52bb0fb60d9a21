"""How well one measurement predicts the next: the figures `nogil-bench compare a.json b.json`
(and `measure --repeat-check`) print for two back-to-back runs of the same command, per kind
of comparison."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from nogil_bench.bench.results import Finding, Kind
from nogil_bench.bench.stats import Verdict

# The engine is calibrated when B's ratios fall inside A's intervals this often, in every kind
# of comparison...
INSIDE_TARGET = 0.90
# ...A and B reach the same verdict this often, over all comparisons...
VERDICTS_AGREE_TARGET = 0.95
# ...and no comparison is faster in one run and slower in the other.
OPPOSITE_TARGET = 0
# The median interval's width, (high - low) / ratio, at most: an interval too wide to decide
# anything holds every rerun and says nothing.
WIDTH_TARGET = 0.30

type Key = tuple[Kind, str, str]


@dataclass(frozen=True, slots=True)
class Calibration:
    """One kind of comparison (or all of them, kind None) over two runs."""

    kind: Kind | None
    comparisons: int  # made in both runs
    inside: int  # of those, how many of B's ratios lie inside A's interval
    agree: int  # the same verdict in both
    opposite: int  # faster in one run, slower in the other
    median_width_first: float | None
    median_width_second: float | None

    @property
    def inside_share(self) -> float:
        return self.inside / self.comparisons if self.comparisons else 0.0

    @property
    def agree_share(self) -> float:
        return self.agree / self.comparisons if self.comparisons else 0.0


@dataclass(frozen=True, slots=True)
class RepeatCheck:
    """Per kind and over all, and what changed between the runs beyond what the intervals
    expected (None when the first run's intervals account for it all)."""

    kinds: list[Calibration]
    total: Calibration
    between_runs_sd: float | None
    # The share of verdicts that intervals this wide are expected to agree on (expected_agreement)
    expected_agree: float | None = None

    @property
    def met(self) -> bool:
        return (
            all(kind.inside_share >= INSIDE_TARGET for kind in self.kinds)
            and self.total.agree_share >= VERDICTS_AGREE_TARGET
            and self.total.opposite <= OPPOSITE_TARGET
            and (self.total.median_width_first or 0.0) <= WIDTH_TARGET
        )


def key(finding: Finding) -> Key:
    return (finding.kind, finding.comparison.baseline, finding.comparison.candidate)


def matched(first: Sequence[Finding], second: Sequence[Finding]) -> list[tuple[Finding, Finding]]:
    """The comparisons both runs made, paired, in the first run's order."""
    later = {key(finding): finding for finding in second}
    return [(finding, later[key(finding)]) for finding in first if key(finding) in later]


def calibrate(first: Sequence[Finding], second: Sequence[Finding]) -> RepeatCheck:
    """A comparison without an interval in the first run counts as not inside it."""
    pairs = matched(first, second)
    kinds = [
        calibration(kind, [(a, b) for a, b in pairs if a.kind is kind])
        for kind in Kind
        if any(a.kind is kind for a, _ in pairs)
    ]
    return RepeatCheck(
        kinds, calibration(None, pairs), between_runs_sd(pairs), expected_agreement(pairs)
    )


def calibration(kind: Kind | None, pairs: Sequence[tuple[Finding, Finding]]) -> Calibration:
    return Calibration(
        kind=kind,
        comparisons=len(pairs),
        inside=sum(a.comparison.contains(b.comparison.ratio) for a, b in pairs),
        agree=sum(a.comparison.verdict == b.comparison.verdict for a, b in pairs),
        opposite=sum(opposite(a, b) for a, b in pairs),
        median_width_first=median_width([a for a, _ in pairs]),
        median_width_second=median_width([b for _, b in pairs]),
    )


def opposite(a: Finding, b: Finding) -> bool:
    return {a.comparison.verdict, b.comparison.verdict} == {Verdict.FASTER, Verdict.SLOWER}


def median_width(findings: Sequence[Finding]) -> float | None:
    widths = [
        (c.ci_high - c.ci_low) / c.ratio
        for c in (finding.comparison for finding in findings)
        if c.ci_low is not None and c.ci_high is not None
    ]
    return statistics.median(widths) if widths else None


def between_runs_sd(pairs: Sequence[tuple[Finding, Finding]]) -> float | None:
    """What changes between runs minutes apart beyond rounds and blocks, as a standard deviation
    of a log ratio: the mean squared difference of the two runs' log ratios, less the variance
    the two runs' own levels put into it, halved (each run draws it once). None when the
    levels account for it all, or no comparison has them."""
    differences = []
    expected = []
    for a, b in pairs:
        if a.levels is None or b.levels is None or a.spread is None or b.spread is None:
            continue
        differences.append((a.levels.mean - b.levels.mean) ** 2)
        expected.append(a.spread.variance + b.spread.variance)
    if not differences:
        return None
    extra = (statistics.fmean(differences) - statistics.fmean(expected)) / 2
    return math.sqrt(extra) if extra > 0 else None


def expected_agreement(pairs: Sequence[tuple[Finding, Finding]]) -> float | None:
    """The share of verdicts two runs are expected to agree on, given how precise they are:
    a comparison whose ratio lies near a verdict's threshold (where its interval's end meets 1x)
    flips between that verdict and "no significant difference" about half the time, however
    honest its intervals, so the agreement a measurement can reach depends on how many such
    comparisons it holds. For each comparison, the true log ratio is taken as the two runs'
    mean, each run's mean is drawn around it with the first run's Var(mean), and a run says
    faster (slower) when its mean lies more than the first run's half-width above (below) 0;
    the figure is the mean over comparisons of the chance that both runs say the same.
    None when no comparison has an interval in both runs."""
    normal = NormalDist()
    chances = []
    for a, b in pairs:
        high = a.comparison.ci_high
        if a.levels is None or b.levels is None or a.spread is None or high is None:
            continue
        sd = math.sqrt(a.spread.variance)
        half = math.log(high) - a.levels.mean
        truth = (a.levels.mean + b.levels.mean) / 2
        if sd == 0:
            chances.append(1.0)
            continue
        faster = 1 - normal.cdf((half - truth) / sd)
        slower = normal.cdf((-half - truth) / sd)
        chances.append(faster**2 + slower**2 + (1 - faster - slower) ** 2)
    return statistics.fmean(chances) if chances else None
