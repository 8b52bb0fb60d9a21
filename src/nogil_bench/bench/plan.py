"""What to measure: interpreters x GIL modes x workloads x runners x worker counts, the host's
ceiling beside them, and the order each round runs them in."""

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from nogil_bench.bench.config import CEILING, Config
from nogil_bench.core import runtime
from nogil_bench.runners.sequential import SequentialRunner

SEQUENTIAL = SequentialRunner.name


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

    def command(self, gil: int) -> list[str]:
        """How to start nogil_bench's worker on this interpreter in the given GIL mode.

        GIL=0 is the free-threaded build's default, not `-X gil=0`: forced off, the GIL stays
        off even for an extension that has not declared it safe without it, which is not how
        the work would run in production. As the default, such an import turns it back on,
        and the worker reports which module did (GIL_ENABLED_BY in bench.worker)."""
        switch = ["-X", "gil=1"] if self.free_threaded and gil else []
        return [self.path, *switch, "-m", "nogil_bench.bench.worker"]


def this_interpreter() -> Interpreter:
    """The interpreter running this code (the service's), without starting another."""
    return Interpreter(sys.executable, runtime.python_version(), runtime.is_free_threaded_build())


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
    """One configuration to measure: its work and runner, on an interpreter in a GIL mode."""

    interpreter: Interpreter
    gil: int
    config: Config

    @property
    def title(self) -> str:
        c = self.config
        return f"{c.workload} {c.runner} w={c.workers} GIL={self.gil} ({self.interpreter.label})"

    @property
    def is_ceiling(self) -> bool:
        return self.config.runner == CEILING


@dataclass(frozen=True, slots=True)
class Matrix:
    """What to measure: every combination, less those that cannot run or would repeat, and the
    host's ceiling at each worker count above one.

    Each of `workloads` is a configuration template (its workload, parameters or function, and
    warmups); the plan sets its runner and workers."""

    interpreters: Sequence[Interpreter]
    gil_modes: Sequence[int]
    workloads: Sequence[Config]
    runners: Sequence[str]
    worker_counts: Sequence[int]
    ceiling: bool = True
    # (interpreter path, workload, runner) -> why that runner cannot run that work there
    # (harness.check_runners): left out of the plan, and reported as unsupported.
    unsupported: Mapping[tuple[str, str, str], str] = field(default_factory=dict)

    def plan(self) -> list[Planned]:
        planned: list[Planned] = []
        runners = [SEQUENTIAL, *(r for r in self.runners if r != SEQUENTIAL)]
        for interpreter in self.interpreters:
            for gil in interpreter.gil_modes(self.gil_modes):
                for base in self.workloads:
                    for runner in runners:
                        if (interpreter.path, base.workload, runner) in self.unsupported:
                            continue
                        # Sequential once: its worker count changes nothing.
                        for workers in [1] if runner == SEQUENTIAL else self.worker_counts:
                            config = replace(base, runner=runner, workers=workers)
                            planned.append(Planned(interpreter, gil, config))
                    planned += self._ceilings(interpreter, gil, base, planned)
        return planned

    def _ceilings(
        self, interpreter: Interpreter, gil: int, base: Config, planned: Sequence[Planned]
    ) -> list[Planned]:
        if not self.ceiling:
            return []
        parallel = {
            item.config.workers
            for item in planned
            if item.interpreter == interpreter
            and item.gil == gil
            and item.config.workload == base.workload
            and item.config.runner != SEQUENTIAL
        }
        return [
            Planned(interpreter, gil, replace(base, runner=CEILING, workers=workers))
            for workers in sorted(parallel)
            if workers > 1
        ]


def round_order(planned: Sequence[Planned], round_index: int) -> list[int]:
    """The order one round runs the configurations in, as indices into `planned`.

    Configurations that are compared sit next to each other: per workload, by worker count,
    then runner, interpreter and GIL mode (sequential GIL=0, sequential GIL=1, ceiling w=2 GIL=0,
    ceiling w=2 GIL=1, threads w=2 GIL=0, ...). Every other round runs in reverse (A B A B, then
    B A B A), so that whichever goes first in a pair, and whatever drift a round has, favours
    neither side over the measurement.
    """
    runner_rank = {SEQUENTIAL: 0, CEILING: 1}
    first_seen: dict[str, int] = {}
    for item in planned:
        first_seen.setdefault(item.config.workload, len(first_seen))
        runner_rank.setdefault(item.config.runner, len(runner_rank))
    interpreter_rank: dict[str, int] = {}
    for item in planned:
        interpreter_rank.setdefault(item.interpreter.path, len(interpreter_rank))

    def key(index: int) -> tuple[int, ...]:
        item = planned[index]
        return (
            first_seen[item.config.workload],
            item.config.workers,
            runner_rank[item.config.runner],
            interpreter_rank[item.interpreter.path],
            item.gil,
        )

    order = sorted(range(len(planned)), key=key)
    return order[::-1] if round_index % 2 else order
