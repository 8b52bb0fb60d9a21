"""The engine: blocks of fresh worker processes, one per planned configuration, each block
measured in rounds that interleave them all, until every comparison's interval is narrow
enough or a bound is hit.

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
    # 2 to 4 blocks of fresh processes, 5 rounds in each (Design.of_rounds counts in rounds).
    measurement = measure_matrix(matrix.plan(), Design(min_blocks=2, max_blocks=4, block_rounds=5))
    measurement = replace(measurement, unsupported=unsupported)  # for the report
    for row in measurement.rows:
        print(row.title, row.speedup and row.speedup.text)

In each block, all workers are started (and in the first block set up one at a time, so that
setup is timed on a quiet host) before the block's first round. Each round then runs every
configuration once, those compared side by side, so both sides of each per-round ratio share
the host's moment; see plan.round_order. Intervals are computed over blocks as well as rounds
(stats.rerun_interval): what one process draws once is redrawn by the next block.
"""

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from nogil_bench.bench import stats
from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.host import read_cpu_jiffies, steal_share
from nogil_bench.bench.plan import Matrix, Planned, round_order
from nogil_bench.bench.progress import Progress, Tracker
from nogil_bench.bench.results import (
    Design,
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
    "Design",
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


DEFAULT_DESIGN = Design()


def _never() -> bool:
    return False


def _ignore(_: Progress) -> None:
    pass


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure_matrix(
    plan: Sequence[Planned],
    design: Design = DEFAULT_DESIGN,
    *,
    should_stop: Callable[[], bool] = _never,
    deadline_s: float | None = None,
    run_timeout_s: float | None = None,
    progress: Callable[[str], None] = _to_stderr,
    on_progress: Callable[[Progress], None] | None = None,
) -> Measurement:
    """Measures every planned configuration in blocks, paired round by round, and compares them.

    A block starts a fresh worker process for every configuration, sets each up and warms it,
    runs `block_rounds` rounds (each configuration once per round, compared ones side by side),
    and stops them all. Whatever a process draws once (memory layout, allocator state, its
    core) is redrawn each block, so intervals computed over blocks (stats.rerun_interval) hold
    what a rerun changes, not only what changes round to round inside one process.

    Blocks continue past `design.min_blocks` until every comparison's interval has a half-width
    within `design.target_ci` of its ratio, or until `design.max_blocks` (StopReason.BOUND).
    A `design.budget_s` cuts every block's rounds to what fits it, as the first block's set-up
    and rounds are timed (Design.rounds_to_fit), and starts no block past the minimum that
    would not fit (StopReason.BUDGET).
    `deadline_s` (seconds from the call) ends the measurement early, dropping an unfinished
    round (StopReason.DEADLINE); with no round finished, DeadlineExceededError.
    `run_timeout_s` bounds one setup or run of one configuration (RunTimeoutError).
    should_stop() is asked before each setup and each run: once true, MeasurementStoppedError.
    A failing worker raises WorkerFailedError naming the configuration, with its error.
    Whichever way it ends, every worker process (and anything a worker started) is killed
    before this returns or raises.

    `progress` gets the lines a log shows (each setup of the first block, each block's
    intervals); `on_progress` the same moments and every round as a structured Progress, with
    an estimate of the time left that accounts for the adaptive stop (bench.progress), for a
    live bar or a running benchmark's `GET`. Both are called between runs, never during one.
    """
    if not plan:
        raise ValueError("nothing planned to measure")
    measured = _Measured(plan)
    tracker = Tracker(design, len(plan))
    report = on_progress or _ignore
    started = time.monotonic()
    host_before = read_cpu_jiffies()
    load_at_start = list(os.getloadavg())  # what else the host ran as measuring began
    stop = StopReason.BOUND
    pace = _Pace(design, started)
    for block in range(design.max_blocks):
        if block and deadline_s is not None and time.monotonic() - started > deadline_s:
            stop = StopReason.DEADLINE
            break
        if block >= design.min_blocks and not pace.another_block_fits():
            stop = StopReason.BUDGET
            break
        session = _Session(plan, should_stop, deadline_s, run_timeout_s, started, block)
        tracker.block_starts()
        pace.block_starts()
        try:
            # The first block sets up one configuration at a time, so that each setup is timed
            # on a quiet host; later blocks set up all at once, their setups not reported.
            session.start(
                progress,
                one_at_a_time=block == 0,
                set_up=lambda done: report(tracker.set_up(done)),
            )
            tracker.rounds_start()
            pace.rounds_start()
            complete = True
            index = 0
            while index < pace.block_rounds:
                tracker.round_starts()
                complete = session.run_round(pace.rounds_done)
                if not complete:
                    break
                index += 1
                if pace.round_done():
                    tracker.design = replace(design, block_rounds=pace.block_rounds)
                report(tracker.round_done())
            measured.add(session, session.finish())
        finally:
            session.kill()
        rows = measured.rows()
        findings = analyse(rows)
        progress(_block_line(block + 1, design, findings, time.monotonic() - started))
        report(tracker.block_done([finding.comparison.relative_half_width for finding in findings]))
        if not complete:
            stop = StopReason.DEADLINE
            break
        comparisons = [finding.comparison for finding in findings]
        if block + 1 >= design.min_blocks and stats.converged(comparisons, design.target_ci):
            stop = StopReason.CONVERGED
            break
    return Measurement(
        rows=rows,
        findings=findings,
        rounds=len(rows[0].runs),
        blocks=rows[0].blocks,
        design=design,
        stop=stop,
        steal_share=steal_share(host_before, read_cpu_jiffies()),
        duration_s=time.monotonic() - started,
        environment=describe_environment()
        | {"workloads": measured.descriptions, "load_average_at_start": load_at_start},
    )


class _Pace:
    """How many rounds each block runs: the design's, unless its budget cuts them as the first
    block's set-up and rounds are timed (Design.rounds_to_fit, again after each of its rounds,
    from their mean: one fast first round must not promise too many); and whether a block past
    the minimum still fits the budget."""

    def __init__(self, design: Design, started: float) -> None:
        self.design = design
        self.started = started
        self.block_rounds = design.block_rounds
        self.rounds_done = 0
        self.block_setup_s = 0.0
        self.round_s = 0.0
        self._block_started = started
        self._rounds_started = started

    def block_starts(self) -> None:
        self._block_started = time.monotonic()

    def rounds_start(self) -> None:
        self._rounds_started = time.monotonic()

    def round_done(self) -> bool:
        """Counts the round; True when it was the first block's, and a budget set the rounds."""
        self.rounds_done += 1
        if self.design.budget_s is None or self.rounds_done > self.block_rounds:
            return False  # no budget, or the first block is over: the rounds are set
        now = time.monotonic()
        self.round_s = (now - self._rounds_started) / self.rounds_done
        self.block_setup_s = self._rounds_started - self._block_started
        self.block_rounds = self.design.rounds_to_fit(
            elapsed_s=now - self.started,
            block_setup_s=self.block_setup_s,
            round_s=self.round_s,
            rounds_done=self.rounds_done,
        )
        return True

    def another_block_fits(self) -> bool:
        if self.design.budget_s is None:
            return True
        block_s = self.block_setup_s + self.block_rounds * self.round_s
        return time.monotonic() - self.started + block_s <= self.design.budget_s


class _Session:
    """One block's worker processes and what they have reported so far."""

    def __init__(
        self,
        plan: Sequence[Planned],
        should_stop: Callable[[], bool],
        deadline_s: float | None,
        run_timeout_s: float | None,
        started: float,
        block: int,
    ) -> None:
        self.plan = plan
        self.should_stop = should_stop
        self.deadline_s = deadline_s
        self.run_timeout_s = run_timeout_s
        self.started = started
        self.block = block
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

    def start(
        self,
        progress: Callable[[str], None],
        *,
        one_at_a_time: bool,
        set_up: Callable[[int], None] = lambda done: None,
    ) -> None:
        """Every worker process at once (they import in parallel), then each one's setup: in
        turn, so that a pool's start-up is timed while the others wait (`set_up` told how many
        are done after each), or all together."""
        for item in self.plan:
            self.configurations.append(Configuration(item))
        for configuration in self.configurations:
            configuration.wait_started(self.run_timeout_s)
        if not one_at_a_time:
            self.check_stop()
            for configuration in self.configurations:
                configuration.send_config()
            self.ready = [c.wait_ready(self.run_timeout_s) for c in self.configurations]
            progress(f"[block {self.block + 1}] {len(self.plan)} configurations set up")
            return
        for number, configuration in enumerate(self.configurations, 1):
            self.check_stop()
            self.ready.append(configuration.set_up(self.run_timeout_s))
            progress(
                f"[setup {number:>3}/{len(self.plan)}] {configuration.item.title}: "
                f"pool started in {self.ready[-1].setup_s:.3f} s"
            )
            set_up(number)

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
                done = min(len(runs) for runs in self.runs)
                for runs in self.runs:
                    del runs[done:]  # a round some configurations missed pairs nothing
                return False
            run, digest = self.configurations[index].run(self.run_timeout_s)
            if not self.runs[index]:
                self.digests[index] = digest
            elif digest != self.digests[index]:
                raise WorkerFailedError(f"{self.plan[index].title}: outputs differ between runs")
            self.runs[index].append(replace(run, block=self.block))
        return True

    def finish(self) -> list[Finished]:
        """Each worker told to stop (end of input), its teardown and peak memory collected."""
        return [configuration.finish(self.run_timeout_s) for configuration in self.configurations]

    def kill(self) -> None:
        for configuration in self.configurations:
            configuration.kill()


class _Measured:
    """Every block's runs, per configuration, and what the first block's setup reported."""

    def __init__(self, plan: Sequence[Planned]) -> None:
        self.plan = plan
        self.first: list[Ready] = []
        self.runs: list[list[RunRecord]] = [[] for _ in plan]
        self.digests: list[str] = ["" for _ in plan]
        self.finished: list[Finished] = []
        self.descriptions: dict[str, str] = {}

    def add(self, session: _Session, finished: list[Finished]) -> None:
        if not self.first:
            self.first = session.ready
            self.digests = session.digests
            self.descriptions = {
                item.config.workload: ready.description
                for item, ready in zip(self.plan, session.ready, strict=True)
            }
        for index, item in enumerate(self.plan):
            if session.runs[index] and session.digests[index] != self.digests[index]:
                raise WorkerFailedError(f"{item.title}: outputs differ between blocks")
            self.runs[index] += session.runs[index]
        # The last block's teardown, and the highest peak of any block's process.
        self.finished = [
            replace(now, peak_rss_bytes=max(now.peak_rss_bytes, before.peak_rss_bytes))
            for now, before in zip(finished, self.finished or finished, strict=True)
        ]

    def rows(self) -> list[Row]:
        return [
            _row(item, ready, runs, digest, done)
            for item, ready, runs, digest, done in zip(
                self.plan, self.first, self.runs, self.digests, self.finished, strict=True
            )
        ]


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


def _block_line(blocks: int, design: Design, findings: Sequence[Finding], elapsed_s: float) -> str:
    target_ci = design.target_ci
    widths = [finding.comparison.relative_half_width for finding in findings]
    known = [width for width in widths if width is not None]
    within = sum(width <= target_ci for width in known)
    widest = (
        f"widest interval ±{max(known):.1%}"
        if known
        else f"no intervals yet ({stats.MIN_CI_BLOCKS} blocks needed)"
    )
    return (
        f"[block {blocks:>2}/{design.max_blocks}] {elapsed_s:>5.0f} s: {widest}, "
        f"{within} of {len(widths)} comparisons within ±{target_ci:.0%}"
    )
