"""What a measurement found: a row per configuration with every round's run, the paired
comparisons between rows with their verdicts, and why measuring stopped."""

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from nogil_bench.bench import stats
from nogil_bench.bench.config import CEILING
from nogil_bench.bench.plan import SEQUENTIAL
from nogil_bench.bench.stats import Comparison

THREADS = "threads"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a configuration (for a ceiling, its K processes together), and the share of
    the host's CPU time stolen while it ran."""

    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    ctx_voluntary: int
    ctx_involuntary: int
    task_s_p50: float
    task_s_p95: float
    steal_share: float | None
    # The block (fresh set of worker processes) that measured it: 0, 1, ...
    block: int = 0


@dataclass(slots=True)
class Row:
    """One configuration: its identity, its runs (the i-th measured in round i, like every
    other row's i-th, each in its block of fresh processes), and its comparisons against
    sequential and against the ceiling. Setup and warmups are the first block's, timed one
    configuration at a time."""

    workload: str
    runner: str
    workers: int
    gil: int
    python: str
    python_path: str
    setup_s: float
    teardown_s: float
    peak_rss_bytes: int
    output_digest: str
    warmups_s: list[float]
    runs: list[RunRecord]
    environment: dict[str, object]
    speedup: Comparison | None = None
    ceiling_share: Comparison | None = None

    @property
    def title(self) -> str:
        return f"{self.workload} {self.runner} w={self.workers} GIL={self.gil} ({self.python})"

    @property
    def gil_enabled_by(self) -> list[str] | None:
        """GIL=0 was asked for, but the GIL was on once the work was imported: the modules that
        turned it on (empty when none said so), else None."""
        if self.gil != 0 or not self.environment.get("gil_enabled"):
            return None
        modules = self.environment.get("gil_enabled_by")
        return [str(module) for module in modules] if isinstance(modules, list) else []

    @property
    def wall_s(self) -> list[float]:
        return [run.wall_s for run in self.runs]

    @property
    def block_of_runs(self) -> list[int]:
        return [run.block for run in self.runs]

    @property
    def blocks(self) -> int:
        return len(set(self.block_of_runs))

    @property
    def summary(self) -> stats.Summary:
        return stats.summarize(self.wall_s)

    @property
    def noisy(self) -> bool:
        return self.summary.noisy

    def median_of(self, figure: Callable[[RunRecord], float]) -> float:
        return statistics.median(figure(run) for run in self.runs)

    @property
    def steal_share_median(self) -> float | None:
        shares = [run.steal_share for run in self.runs if run.steal_share is not None]
        return statistics.median(shares) if shares else None

    @property
    def end_to_end_s(self) -> float:
        """What a one-shot batch pays: the pool's start-up and one run."""
        return self.setup_s + self.summary.median

    @property
    def efficiency(self) -> float | None:
        return None if self.speedup is None else stats.efficiency(self.speedup.ratio, self.workers)

    @property
    def karp_flatt(self) -> float | None:
        return None if self.speedup is None else stats.karp_flatt(self.speedup.ratio, self.workers)


class Kind(StrEnum):
    """What a comparison asks."""

    SPEEDUP = "vs sequential"  # each parallel configuration (and the ceiling) vs sequential
    CEILING = "share of ceiling"  # each parallel configuration vs the ceiling at its workers
    GIL = "GIL=0 vs GIL=1"  # the same configuration in the two GIL modes
    PYTHON = "interpreter"  # the same configuration on another interpreter
    RUNNER = "vs threads"  # each other runner vs threads at the same worker count


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    workload: str
    comparison: Comparison
    # The log ratios by level, and the variance of their mean (None without an interval):
    # what calibration compares between runs.
    levels: stats.Levels | None = None
    spread: stats.MeanVariance | None = None


class StopReason(StrEnum):
    CONVERGED = "converged"  # every CI within the target
    BOUND = "bound"  # max rounds reached first
    DEADLINE = "deadline"  # the caller's deadline reached first, mid-block
    BUDGET = "budget"  # the design's time budget left no room for another block


# The fewest rounds a budget cuts a block to: one fewer would leave a block without round to
# round degrees of freedom, and its between-blocks estimate to a single round's luck.
MIN_BUDGET_ROUNDS = 2


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A runner left out of the measurement, on one interpreter, because it cannot run the
    work: the reason says why (its check ran in a worker process, before measuring)."""

    workload: str
    runner: str
    python: str
    reason: str


@dataclass(frozen=True, slots=True)
class Design:
    """How much a measurement measures: blocks of fresh worker processes, `block_rounds` rounds
    in each; at least `min_blocks`, then more until every interval is within `target_ci` of
    its ratio (half-width), or `max_blocks`.

    With a `budget_s`, measuring fits in that many seconds: as the first block's set-up and
    rounds are timed, every block gets as many rounds as the minimum blocks can have within the
    budget (at most `block_rounds`, at least MIN_BUDGET_ROUNDS), and no block past the minimum
    starts unless it fits too (StopReason.BUDGET)."""

    min_blocks: int = 2
    max_blocks: int = 6
    block_rounds: int = 5
    target_ci: float = 0.05
    budget_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_blocks <= self.max_blocks:
            raise ValueError(
                f"need 1 <= min_blocks <= max_blocks, got {self.min_blocks}, {self.max_blocks}"
            )
        if self.block_rounds < 1:
            raise ValueError(f"need at least one round per block, got {self.block_rounds}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"a time budget must be positive, got {self.budget_s}")

    def rounds_to_fit(
        self, *, elapsed_s: float, block_setup_s: float, round_s: float, rounds_done: int = 1
    ) -> int:
        """Rounds a block, the same in every block, that let the minimum blocks end within the
        budget: `elapsed_s` is spent (the first block's set-up and its first `rounds_done`
        rounds), and every later block costs `block_setup_s` more (the first's, which sets up
        one configuration at a time: the later ones, all at once, take less) plus its rounds,
        each taking `round_s` (the mean so far). Never fewer than `rounds_done`."""
        if self.budget_s is None:
            return self.block_rounds
        left_s = self.budget_s - elapsed_s - (self.min_blocks - 1) * block_setup_s
        fitting = math.floor((left_s / max(round_s, 1e-9) + rounds_done) / self.min_blocks)
        least = max(rounds_done, min(MIN_BUDGET_ROUNDS, self.block_rounds))
        return max(least, min(self.block_rounds, fitting))

    @classmethod
    def of_rounds(
        cls,
        min_rounds: int,
        max_rounds: int,
        block_rounds: int,
        target_ci: float,
        budget_s: float | None = None,
    ) -> Design:
        """Rounds at least and at most, as whole blocks of `block_rounds` (rounded up)."""
        return cls(
            min_blocks=blocks_for(min_rounds, block_rounds),
            max_blocks=blocks_for(max_rounds, block_rounds),
            block_rounds=block_rounds,
            target_ci=target_ci,
            budget_s=budget_s,
        )


def blocks_for(rounds: int, block_rounds: int) -> int:
    """The blocks that hold at least `rounds` rounds of `block_rounds` each."""
    return max(1, math.ceil(rounds / block_rounds))


@dataclass(frozen=True, slots=True)
class Measurement:
    """Everything one measurement found; what the report, the JSON document and the API show."""

    rows: list[Row]
    findings: list[Finding]
    rounds: int
    blocks: int
    design: Design
    stop: StopReason
    # Stolen CPU time as a share of all of it, over the whole of the rounds; None off Linux.
    steal_share: float | None
    duration_s: float
    environment: dict[str, object] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)

    @property
    def stop_text(self) -> str:
        text = describe_stop(
            self.stop, self.findings, self.blocks, self.rounds, self.design.target_ci
        )
        budget_s = self.design.budget_s
        cut = self.rounds < self.blocks * self.design.block_rounds
        if budget_s is not None and cut and self.stop is not StopReason.DEADLINE:
            text += (
                f"; {self.rounds // self.blocks} rounds a block, not {self.design.block_rounds}, "
                f"to fit the {budget_s:g} s budget"
            )
        return text

    @property
    def variance(self) -> Variance:
        return variance_of(self.findings)

    def of_kind(self, kind: Kind) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]


def describe_stop(
    stop: StopReason, findings: Sequence[Finding], blocks: int, rounds: int, target_ci: float
) -> str:
    widths = [finding.comparison.relative_half_width for finding in findings]
    known = [width for width in widths if width is not None]
    widest = f"widest ±{max(known):.1%}" if known else "no interval yet"
    done = f"{_count(blocks, 'block')} of {_count(rounds, 'round')}"
    unknown = len(widths) - len(known)
    missing = f", {unknown} comparisons without one" if unknown else ""
    match stop:
        case StopReason.CONVERGED:
            return (
                f"stopped after {done}: every interval within the ±{target_ci:.0%} target "
                f"({widest})"
            )
        case StopReason.BOUND:
            return (
                f"stopped at the bound of {done}: intervals wider than the "
                f"±{target_ci:.0%} target ({widest}{missing})"
            )
        case StopReason.DEADLINE:
            return (
                f"stopped by the deadline after {done}, before every interval was within "
                f"the ±{target_ci:.0%} target ({widest}{missing})"
            )
        case StopReason.BUDGET:
            return (
                f"stopped after {done}: another block would not fit the time budget, and "
                f"intervals are wider than the ±{target_ci:.0%} target ({widest}{missing})"
            )


def _count(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")


def analyse(rows: Sequence[Row]) -> list[Finding]:
    """Every comparison the engine makes, each paired round by round; also sets each row's
    speedup and ceiling_share."""
    findings: list[Finding] = []
    for row in rows:
        row.speedup = row.ceiling_share = None
    found = pairs(rows)
    all_levels = [levels_of(baseline, candidate) for _, baseline, candidate in found]
    pooled = stats.pool_between(all_levels)
    for (kind, baseline, candidate), of_pair in zip(found, all_levels, strict=True):
        comparison = stats.compare_blocks(baseline.title, candidate.title, of_pair, pooled)
        spread = stats.mean_variance(of_pair, pooled)
        findings.append(Finding(kind, candidate.workload, comparison, of_pair, spread))
        if kind is Kind.SPEEDUP:
            candidate.speedup = comparison
        elif kind is Kind.CEILING:
            candidate.ceiling_share = comparison
    return findings


def levels_of(baseline: Row, candidate: Row) -> stats.Levels:
    """The per-round ratios of two rows, by block: each round of a block ran both, side by side."""
    if baseline.block_of_runs != candidate.block_of_runs:
        raise ValueError(f"{candidate.title} and {baseline.title} ran in different rounds")
    ratios = stats.paired_ratios(baseline.wall_s, candidate.wall_s)
    return stats.levels(ratios, baseline.block_of_runs)


@dataclass(frozen=True, slots=True)
class Variance:
    """Where the variance of the comparisons' log ratios lives, in one measurement: the median
    over comparisons of the round-to-round standard deviation inside a block of processes; the
    between-blocks standard deviation pooled over the comparisons as the intervals use it (each
    comparison's estimate clipped at zero: it leans wide, see stats.pool_between); and the plain
    method-of-moments estimate, the mean of the unclipped estimates (None with one block)."""

    within_sd: float | None
    between_sd: float | None
    between_sd_unclipped: float | None
    between_df: int
    comparisons: int


def variance_of(findings: Sequence[Finding]) -> Variance:
    """From the levels analyse() found for each comparison, without deriving them again."""
    all_levels = [finding.levels for finding in findings if finding.levels is not None]
    withins = [math.sqrt(found.within) for found in all_levels if found.within_df]
    pooled = stats.pool_between(all_levels)
    estimates = [found.between for found in all_levels if found.between is not None]
    return Variance(
        within_sd=statistics.median(withins) if withins else None,
        between_sd=pooled.sd if pooled else None,
        between_sd_unclipped=math.sqrt(max(0.0, statistics.fmean(estimates)))
        if estimates
        else None,
        between_df=pooled.df if pooled else 0,
        comparisons=len(all_levels),
    )


def pairs(rows: Sequence[Row]) -> list[tuple[Kind, Row, Row]]:
    """(kind, baseline, candidate) for every comparison, in the order the report shows them."""

    def matching(candidate: Row, *same: str, **wanted: object) -> list[Row]:
        return [
            row
            for row in rows
            if all(getattr(row, name) == getattr(candidate, name) for name in same)
            and all(getattr(row, name) == value for name, value in wanted.items())
        ]

    found: list[tuple[Kind, Row, Row]] = []
    parallel = [row for row in rows if row.runner != SEQUENTIAL]
    measured = [row for row in rows if row.runner != CEILING]  # the ceiling measures the host
    for row in parallel:
        for baseline in matching(row, "workload", "python", "gil", runner=SEQUENTIAL):
            found.append((Kind.SPEEDUP, baseline, row))
    for row in parallel:
        if row.runner != CEILING:
            for ceiling in matching(row, "workload", "python", "gil", "workers", runner=CEILING):
                found.append((Kind.CEILING, ceiling, row))
    for row in (row for row in measured if row.gil == 0):
        for baseline in matching(row, "workload", "python", "runner", "workers", gil=1):
            found.append((Kind.GIL, baseline, row))
    for row in (row for row in measured if row.runner not in {SEQUENTIAL, THREADS}):
        for baseline in matching(row, "workload", "python", "gil", "workers", runner=THREADS):
            found.append((Kind.RUNNER, baseline, row))
    # Each interpreter against the first one named. A default build has only GIL=1, so it is
    # compared with a free-threaded build in each of that build's GIL modes.
    first_python = measured[0].python if measured else None
    for row in (row for row in measured if row.python != first_python):
        for baseline in matching(row, "workload", "runner", "workers", python=first_python):
            if baseline.gil == row.gil or _free_threaded(baseline) != _free_threaded(row):
                found.append((Kind.PYTHON, baseline, row))
    return found


def _free_threaded(row: Row) -> bool:
    return bool(row.environment.get("free_threaded"))


def grouped[K](rows: Sequence[Row], key: Callable[[Row], K]) -> dict[K, list[Row]]:
    """The rows by `key`, groups in first-seen order, rows in theirs. (The plan orders rows by
    interpreter and GIL mode before workload, so rows of one workload are not adjacent.)"""
    groups: dict[K, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def mismatched_outputs(rows: Sequence[Row]) -> list[str]:
    """Workloads whose output differed between any two configurations: a function that is
    non-deterministic, or not thread-safe."""
    digests: dict[str, set[str]] = {}
    for row in rows:
        digests.setdefault(row.workload, set()).add(row.output_digest)
    return [workload for workload, found in digests.items() if len(found) > 1]


def differing_rows(rows: Sequence[Row], workload: str) -> list[Row]:
    """The configurations of a workload whose outputs differ from its first row's (sequential's,
    the baseline, where it ran)."""
    of_workload = [row for row in rows if row.workload == workload]
    return [row for row in of_workload if row.output_digest != of_workload[0].output_digest]
