"""Plans benchmark configurations, runs each in a fresh interpreter, and derives the comparison."""

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nogil_bench.bench import stats
from nogil_bench.bench.worker import Config, ConfigResult, RunResult
from nogil_bench.bench.workloads import workload_kind
from nogil_bench.runners import get_runner


@dataclass(frozen=True, slots=True)
class Interpreter:
    path: str
    version: str
    free_threaded: bool

    @property
    def label(self) -> str:
        return self.version + ("t" if self.free_threaded else "")

    def gil_modes(self, wanted: Sequence[int]) -> list[int]:
        # A default build always holds the GIL: it has only GIL=1 to offer.
        return list(wanted) if self.free_threaded else [1]


def probe_interpreter(path: str) -> Interpreter:
    code = (
        "import json, platform, sysconfig; print(json.dumps([platform.python_version(), "
        "bool(sysconfig.get_config_var('Py_GIL_DISABLED'))]))"
    )
    try:
        # The user named this interpreter to benchmark; running it is the point.
        output = subprocess.run(  # noqa: S603
            [path, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"--python {path}: cannot run it ({error})") from None
    version, free_threaded = json.loads(output)
    return Interpreter(path, version, free_threaded)


@dataclass(frozen=True, slots=True)
class Planned:
    interpreter: Interpreter
    gil: int
    config: Config

    @property
    def title(self) -> str:
        c = self.config
        return f"{c.workload} {c.runner} w={c.workers} GIL={self.gil} ({self.interpreter.label})"


@dataclass(frozen=True, slots=True)
class Matrix:
    """What to measure: every combination, less those that cannot run or would repeat."""

    interpreters: Sequence[Interpreter]
    gil_modes: Sequence[int]
    workloads: Sequence[str]
    runners: Sequence[str]
    worker_counts: Sequence[int]
    template: Config

    def plan(self) -> list[Planned]:
        planned: list[Planned] = []
        runners = ["sequential", *(r for r in self.runners if r != "sequential")]
        for interpreter in self.interpreters:
            for gil in interpreter.gil_modes(self.gil_modes):
                for workload in self.workloads:
                    for runner in runners:
                        if not can_run(runner, workload):
                            continue
                        # Sequential once: its worker count changes nothing.
                        for workers in [1] if runner == "sequential" else self.worker_counts:
                            config = replace(
                                self.template, workload=workload, runner=runner, workers=workers
                            )
                            planned.append(Planned(interpreter, gil, config))
        return planned


def can_run(runner: str, workload: str) -> bool:
    return get_runner(runner).runs_native_extensions or workload_kind(workload) != "native"


@dataclass(slots=True)
class Row:
    """One configuration's result: the figures a reader compares, and the runs behind them."""

    workload: str
    runner: str
    workers: int
    gil: int
    python: str
    python_path: str
    wall_s_median: float
    wall_s_iqr: float
    wall_s_mad: float
    wall_s_stdev: float
    noisy: bool
    setup_s: float
    teardown_s: float
    end_to_end_s: float
    cpu_user_s: float
    cpu_system_s: float
    ctx_voluntary: float
    ctx_involuntary: float
    task_s_p50: float
    task_s_p95: float
    peak_rss_bytes: int
    output_digest: str
    runs_wall_s: list[float]
    # The median of each fresh process's runs: how much a configuration moves between processes.
    process_medians_s: list[float]
    environment: dict[str, object]
    speedup: float | None = None
    efficiency: float | None = None
    karp_flatt: float | None = None
    # From the fastest run of each side: what the machine does when nothing disturbs it.
    # Shared hosts only ever slow runs down, so this moves less between runs than the median.
    speedup_best: float | None = None


def run_in_fresh_process(item: Planned) -> ConfigResult:
    command = [item.interpreter.path]
    if item.interpreter.free_threaded:
        command += ["-X", f"gil={item.gil}"]
    command += ["-m", "nogil_bench.bench.worker"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    completed = subprocess.run(  # noqa: S603 -- an interpreter the user chose, our own module
        command,
        input=json.dumps(asdict(item.config)),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{item.title} failed:\n{completed.stderr.strip()}")
    return ConfigResult.from_json(json.loads(completed.stdout))


def run_plan(
    planned: Sequence[Planned],
    processes: int = 1,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Row]:
    """Measures every configuration in `processes` fresh interpreters and pools their runs.

    The passes are interleaved (every configuration once, then again), so a slow spell on the
    machine spreads over all configurations instead of landing on one.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    results: list[list[ConfigResult]] = [[] for _ in planned]
    total, started = len(planned) * processes, time.monotonic()
    for round_number in range(processes):
        for index, item in enumerate(planned):
            result = run_in_fresh_process(item)
            results[index].append(result)
            done = round_number * len(planned) + index + 1
            elapsed = time.monotonic() - started
            remaining = elapsed / done * (total - done)
            median = statistics.median(run.wall_s for run in result.runs)
            progress(
                f"[{done:>4}/{total}] {elapsed:>5.0f} s elapsed, ~{remaining:.0f} s left | "
                f"pass {round_number + 1}/{processes} {item.title}: median {median:.3f} s"
            )
    return derive([to_row(item, found) for item, found in zip(planned, results, strict=True)])


def to_row(item: Planned, results: Sequence[ConfigResult]) -> Row:
    """One row from a configuration's fresh processes, their runs pooled (pyperf's way)."""
    digests = {result.output_digest for result in results}
    if len(digests) != 1:
        raise RuntimeError(f"{item.title}: outputs differ between processes")
    runs = [run for result in results for run in result.runs]
    wall = stats.summarize([run.wall_s for run in runs])

    def median_of(field: Callable[[RunResult], float]) -> float:
        return statistics.median(field(run) for run in runs)

    setup_s = statistics.median(result.setup_s for result in results)
    return Row(
        workload=item.config.workload,
        runner=item.config.runner,
        workers=item.config.workers,
        gil=item.gil,
        python=item.interpreter.label,
        python_path=item.interpreter.path,
        wall_s_median=wall.median,
        wall_s_iqr=wall.iqr,
        wall_s_mad=wall.mad,
        wall_s_stdev=wall.stdev,
        noisy=wall.noisy,
        setup_s=setup_s,
        teardown_s=statistics.median(result.teardown_s for result in results),
        end_to_end_s=setup_s + wall.median,
        cpu_user_s=median_of(lambda run: run.cpu_user_s),
        cpu_system_s=median_of(lambda run: run.cpu_system_s),
        ctx_voluntary=median_of(lambda run: run.ctx_voluntary),
        ctx_involuntary=median_of(lambda run: run.ctx_involuntary),
        task_s_p50=median_of(lambda run: run.task_s_p50),
        task_s_p95=median_of(lambda run: run.task_s_p95),
        peak_rss_bytes=max(result.peak_rss_bytes for result in results),
        output_digest=digests.pop(),
        runs_wall_s=[run.wall_s for run in runs],
        process_medians_s=[
            statistics.median(run.wall_s for run in result.runs) for result in results
        ],
        environment=results[0].environment,
    )


def derive(rows: list[Row]) -> list[Row]:
    """Adds speedup over sequential (same workload, interpreter and GIL mode), efficiency and
    the Karp-Flatt serial fraction."""
    baselines = {
        (row.workload, row.python, row.gil): row for row in rows if row.runner == "sequential"
    }
    for row in rows:
        baseline = baselines.get((row.workload, row.python, row.gil))
        if baseline is not None:
            row.speedup = stats.speedup(baseline.wall_s_median, row.wall_s_median)
            row.speedup_best = stats.speedup(min(baseline.runs_wall_s), min(row.runs_wall_s))
            row.efficiency = stats.efficiency(row.speedup, row.workers)
            row.karp_flatt = stats.karp_flatt(row.speedup, row.workers)
    return rows


def mismatched_outputs(rows: Sequence[Row]) -> list[str]:
    """Workloads whose output differed between any two configurations (it never should)."""
    digests: dict[str, set[str]] = {}
    for row in rows:
        digests.setdefault(row.workload, set()).add(row.output_digest)
    return [workload for workload, found in digests.items() if len(found) > 1]


def write_document(path: Path, environment: dict[str, object], rows: Sequence[Row]) -> None:
    document = {"environment": environment, "results": [asdict(row) for row in rows]}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)
