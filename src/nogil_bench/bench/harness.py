"""Plans benchmark configurations, runs each in a fresh interpreter, and derives the comparison."""

import json
import os
import statistics
import subprocess
import sys
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
    environment: dict[str, object]
    speedup: float | None = None
    efficiency: float | None = None
    karp_flatt: float | None = None


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
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Row]:
    rows = []
    for number, item in enumerate(planned, start=1):
        row = to_row(item, run_in_fresh_process(item))
        progress(
            f"[{number:>3}/{len(planned)}] {item.title}: median {row.wall_s_median:.3f} s "
            f"over {len(row.runs_wall_s)} runs" + ("  (noisy)" if row.noisy else "")
        )
        rows.append(row)
    return derive(rows)


def to_row(item: Planned, result: ConfigResult) -> Row:
    runs = result.runs
    wall = stats.summarize([run.wall_s for run in runs])

    def median_of(field: Callable[[RunResult], float]) -> float:
        return statistics.median(field(run) for run in runs)

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
        setup_s=result.setup_s,
        teardown_s=result.teardown_s,
        end_to_end_s=result.setup_s + wall.median,
        cpu_user_s=median_of(lambda run: run.cpu_user_s),
        cpu_system_s=median_of(lambda run: run.cpu_system_s),
        ctx_voluntary=median_of(lambda run: run.ctx_voluntary),
        ctx_involuntary=median_of(lambda run: run.ctx_involuntary),
        task_s_p50=median_of(lambda run: run.task_s_p50),
        task_s_p95=median_of(lambda run: run.task_s_p95),
        peak_rss_bytes=result.peak_rss_bytes,
        output_digest=result.output_digest,
        runs_wall_s=[run.wall_s for run in runs],
        environment=result.environment,
    )


def derive(rows: list[Row]) -> list[Row]:
    """Adds speedup over sequential (same workload, interpreter and GIL mode), efficiency and
    the Karp-Flatt serial fraction."""
    baselines = {
        (row.workload, row.python, row.gil): row.wall_s_median
        for row in rows
        if row.runner == "sequential"
    }
    for row in rows:
        baseline = baselines.get((row.workload, row.python, row.gil))
        if baseline is not None:
            row.speedup = stats.speedup(baseline, row.wall_s_median)
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
