"""How well one measurement predicts the next: the figures `nogil-bench compare a.json b.json`
prints for two back-to-back runs of the same command."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from nogil_bench.bench.results import Finding, Kind

# The engine is calibrated when B's speedups fall inside A's 95% CIs this often...
INSIDE_CI_TARGET = 0.90
# ...and A and B reach the same verdict this often.
VERDICTS_AGREE_TARGET = 0.95
# The verdicts that must agree: the speedups and the GIL comparisons.
VERDICT_KINDS = (Kind.SPEEDUP, Kind.GIL)

type Key = tuple[Kind, str, str]


@dataclass(frozen=True, slots=True)
class Calibration:
    speedups: int  # configurations with a speedup in both runs
    inside_ci: int  # of those, how many of B's speedups lie inside A's 95% CI
    verdicts: int  # comparisons of VERDICT_KINDS made in both runs
    verdicts_agree: int
    # The median of (CI high - CI low) / median ratio over the speedups, per run.
    median_width_first: float | None
    median_width_second: float | None

    @property
    def inside_share(self) -> float:
        return self.inside_ci / self.speedups if self.speedups else 0.0

    @property
    def agree_share(self) -> float:
        return self.verdicts_agree / self.verdicts if self.verdicts else 0.0

    @property
    def met(self) -> bool:
        return self.inside_share >= INSIDE_CI_TARGET and self.agree_share >= VERDICTS_AGREE_TARGET


def key(finding: Finding) -> Key:
    return (finding.kind, finding.comparison.baseline, finding.comparison.candidate)


def matched(first: Sequence[Finding], second: Sequence[Finding]) -> list[tuple[Finding, Finding]]:
    """The comparisons both runs made, paired, in the first run's order."""
    later = {key(finding): finding for finding in second}
    return [(finding, later[key(finding)]) for finding in first if key(finding) in later]


def calibrate(first: Sequence[Finding], second: Sequence[Finding]) -> Calibration:
    """A speedup without a CI in the first run (too few rounds) counts as not inside it."""
    pairs = matched(first, second)
    speedups = [(a, b) for a, b in pairs if a.kind is Kind.SPEEDUP]
    verdicts = [(a, b) for a, b in pairs if a.kind in VERDICT_KINDS]
    return Calibration(
        speedups=len(speedups),
        inside_ci=sum(a.comparison.contains(b.comparison.ratio) for a, b in speedups),
        verdicts=len(verdicts),
        verdicts_agree=sum(a.comparison.verdict == b.comparison.verdict for a, b in verdicts),
        median_width_first=median_width([a for a, _ in speedups]),
        median_width_second=median_width([b for _, b in speedups]),
    )


def median_width(findings: Sequence[Finding]) -> float | None:
    widths = [
        (c.ci_high - c.ci_low) / c.ratio
        for c in (finding.comparison for finding in findings)
        if c.ci_low is not None and c.ci_high is not None
    ]
    return statistics.median(widths) if widths else None
