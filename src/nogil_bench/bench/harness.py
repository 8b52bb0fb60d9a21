"""The engine: each planned configuration in its own fresh worker process, measured in rounds
that interleave them all, until every comparison's CI is narrow enough or a bound is hit.

    matrix = Matrix(
        interpreters=[this_interpreter()],  # sys.executable, with the GIL off and on
        gil_modes=[0, 1],
        # An installed workload with its parameters (workloads.registry), or a user's function
        # (Config(..., function=FunctionTarget("mypkg.parse:parse_one", count=100))).
        workloads=[Config("fib", "sequential", 1, params={"n": 27, "tasks": 8})],
        runners=["threads", "processes"],  # sequential, the baseline, is always planned
        worker_counts=[1, 2],
    )
    matrix, unsupported = check_runners(matrix)  # who cannot run it, asked in a worker
    measurement = measure_matrix(matrix.plan(), min_rounds=6, max_rounds=12)
    measurement = replace(measurement, unsupported=unsupported)  # for the report
    for row in measurement.rows:
        print(row.title, row.speedup and row.speedup.text)

All workers are started (and set up one at a time, so that setup is timed on a quiet host)
before the first round. Each round then runs every configuration once, those compared side by
side, so both sides of each per-round ratio share the host's moment; see plan.round_order.
"""

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from nogil_bench.bench import stats
from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.host import read_cpu_jiffies, steal_share
from nogil_bench.bench.plan import Matrix, Planned, round_order
from nogil_bench.bench.results import (
    Finding,
    Measurement,
    Row,
    RunRecord,
    StopReason,
    Unsupported,
    analyse,
)
from nogil_bench.bench.supervisor import (
    Configuration,
    Finished,
    MeasurementError,
    Ready,
    RunTimeoutError,
    WorkerFailedError,
    probe,
)

__all__ = [
    "DeadlineExceededError",
    "MeasurementError",
    "MeasurementStoppedError",
    "RunTimeoutError",
    "Unsupported",
    "WorkerFailedError",
    "check_runners",
    "measure_matrix",
]


class MeasurementStoppedError(MeasurementError):
    """should_stop() turned true: nothing was kept, and the caller may run it again whole."""


class DeadlineExceededError(MeasurementError):
    """The deadline passed before a single round was complete: there is nothing to report."""


def check_runners(
    matrix: Matrix, *, timeout_s: float | None = None
) -> tuple[Matrix, list[Unsupported]]:
    """The matrix without the runners that cannot run its work, and why each cannot: for each
    interpreter and workload, one fresh worker process builds the work (importing it there,
    never here) and asks every runner (bench.worker.probe). A workload that cannot even be
    built fails as a WorkerFailedError naming it, before any measuring."""
    unsupported: dict[tuple[str, str, str], str] = {}
    found: list[Unsupported] = []
    wanted = list(dict.fromkeys(matrix.runners))
    for interpreter in matrix.interpreters:
        gil = min(interpreter.gil_modes(matrix.gil_modes))
        for config in matrix.workloads:
            checked = probe(interpreter, gil, config, wanted, timeout_s)
            for runner, reason in checked.unsupported.items():
                unsupported[interpreter.path, config.workload, runner] = reason
                found.append(Unsupported(config.workload, runner, interpreter.label, reason))
    return replace(matrix, unsupported=unsupported), found


def _never() -> bool:
    return False


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure_matrix(
    plan: Sequence[Planned],
    *,
    min_rounds: int = 10,
    max_rounds: int = 30,
    target_ci: float = 0.05,
    should_stop: Callable[[], bool] = _never,
    deadline_s: float | None = None,
    run_timeout_s: float | None = None,
    progress: Callable[[str], None] = _to_stderr,
) -> Measurement:
    """Measures every planned configuration, paired round by round, and compares them.

    Rounds continue past `min_rounds` until every comparison's 95% CI has a half-width within
    `target_ci` of its ratio, or until `max_rounds` (StopReason.BOUND). `deadline_s` (seconds
    from the call) ends the measurement early, dropping an unfinished round
    (StopReason.DEADLINE); with no round finished, DeadlineExceededError. `run_timeout_s` bounds
    one setup or run of one configuration (RunTimeoutError). should_stop() is asked before each
    setup and each run: once true, MeasurementStoppedError. A failing worker raises
    WorkerFailedError naming the configuration, with its error. Whichever way it ends, every
    worker process (and anything a worker started) is killed before this returns or raises.
    """
    if not plan:
        raise ValueError("nothing planned to measure")
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    session = _Session(plan, should_stop, deadline_s, run_timeout_s)
    try:
        session.start(progress)
        host_before = read_cpu_jiffies()
        stop = StopReason.BOUND
        for round_index in range(max_rounds):
            if not session.run_round(round_index):
                stop = StopReason.DEADLINE
                break
            findings = analyse(session.rows())
            progress(
                _round_line(round_index + 1, max_rounds, findings, target_ci, session.elapsed_s)
            )
            comparisons = [finding.comparison for finding in findings]
            if round_index + 1 >= min_rounds and stats.converged(comparisons, target_ci):
                stop = StopReason.CONVERGED
                break
        host_after = read_cpu_jiffies()
        rows = session.finish()
    finally:
        session.kill()
    return Measurement(
        rows=rows,
        findings=analyse(rows),
        rounds=len(rows[0].runs),
        min_rounds=min_rounds,
        max_rounds=max_rounds,
        target_ci=target_ci,
        stop=stop,
        steal_share=steal_share(host_before, host_after),
        duration_s=session.elapsed_s,
        environment=describe_environment() | {"workloads": session.descriptions()},
    )


class _Session:
    """One measurement's worker processes and what they have reported so far."""

    def __init__(
        self,
        plan: Sequence[Planned],
        should_stop: Callable[[], bool],
        deadline_s: float | None,
        run_timeout_s: float | None,
    ) -> None:
        self.plan = plan
        self.should_stop = should_stop
        self.deadline_s = deadline_s
        self.run_timeout_s = run_timeout_s
        self.started = time.monotonic()
        self.configurations: list[Configuration] = []
        self.ready: list[Ready] = []
        self.runs: list[list[RunRecord]] = [[] for _ in plan]
        self.digests: list[str] = ["" for _ in plan]  # each configuration's first run's

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def check_stop(self) -> None:
        if self.should_stop():
            raise MeasurementStoppedError("measurement stopped on request; nothing was kept")

    def start(self, progress: Callable[[str], None]) -> None:
        """Every worker process at once (they import in parallel), then each one's setup in
        turn, so that a pool's start-up is timed while the others wait."""
        for item in self.plan:
            self.configurations.append(Configuration(item))
        for configuration in self.configurations:
            configuration.wait_started(self.run_timeout_s)
        for number, configuration in enumerate(self.configurations, 1):
            self.check_stop()
            self.ready.append(configuration.set_up(self.run_timeout_s))
            progress(
                f"[setup {number:>3}/{len(self.plan)}] {configuration.item.title}: "
                f"pool started in {self.ready[-1].setup_s:.3f} s"
            )

    def run_round(self, round_index: int) -> bool:
        """Every configuration once, in the round's order; False when the deadline passed
        first, the unfinished round dropped."""
        for index in round_order(self.plan, round_index):
            self.check_stop()
            if self.deadline_s is not None and self.elapsed_s > self.deadline_s:
                if round_index == 0:
                    raise DeadlineExceededError(
                        f"the {self.deadline_s:g} s deadline passed before one round was done"
                    )
                for runs in self.runs:
                    del runs[round_index:]  # a round some configurations missed pairs nothing
                return False
            run, digest = self.configurations[index].run(self.run_timeout_s)
            if not self.runs[index]:
                self.digests[index] = digest
            elif digest != self.digests[index]:
                raise WorkerFailedError(f"{self.plan[index].title}: outputs differ between runs")
            self.runs[index].append(run)
        return True

    def rows(self, finished: Sequence[Finished | None] | None = None) -> list[Row]:
        return [
            _row(item, ready, runs, digest, done)
            for item, ready, runs, digest, done in zip(
                self.plan,
                self.ready,
                self.runs,
                self.digests,
                finished or [None] * len(self.plan),
                strict=True,
            )
        ]

    def descriptions(self) -> dict[str, str]:
        """Each workload's description, as its worker processes built it."""
        return {
            item.config.workload: ready.description
            for item, ready in zip(self.plan, self.ready, strict=True)
        }

    def finish(self) -> list[Row]:
        """Each worker told to stop (end of input), its teardown and peak memory collected."""
        finished = [
            configuration.finish(self.run_timeout_s) for configuration in self.configurations
        ]
        return self.rows(finished)

    def kill(self) -> None:
        for configuration in self.configurations:
            configuration.kill()


def _row(
    item: Planned,
    ready: Ready,
    runs: Sequence[RunRecord],
    digest: str,
    finished: Finished | None = None,
) -> Row:
    config = item.config
    return Row(
        workload=config.workload,
        runner=config.runner,
        workers=config.workers,
        gil=item.gil,
        python=item.interpreter.label,
        python_path=item.interpreter.path,
        setup_s=ready.setup_s,
        teardown_s=finished.teardown_s if finished else 0.0,
        peak_rss_bytes=finished.peak_rss_bytes if finished else 0,
        output_digest=digest,
        warmups_s=ready.warmups_s,
        runs=list(runs),
        environment=ready.environment,
    )


def _round_line(
    rounds: int, max_rounds: int, findings: Sequence[Finding], target_ci: float, elapsed_s: float
) -> str:
    widths = [finding.comparison.relative_half_width for finding in findings]
    known = [width for width in widths if width is not None]
    within = sum(width <= target_ci for width in known)
    widest = f"widest CI ±{max(known):.1%}" if known else "no CIs yet (6 rounds needed)"
    return (
        f"[round {rounds:>2}/{max_rounds}] {elapsed_s:>5.0f} s: {widest}, "
        f"{within} of {len(widths)} comparisons within ±{target_ci:.0%}"
    )
