"""One benchmark configuration, alive in its own fresh process for the whole measurement.

    python [-X gil=1] -m nogil_bench.bench.worker

A line protocol on stdin and stdout, one JSON document per line:

    (once imported)         out: {"event": "started"}
    in: {"probe": [names]}  out: {"event": "probed", "unsupported": {runner: reason},
                                  "gil_enabled", "gil_enabled_by", "description"}; then exits
    in: the Config          out: {"event": "ready", "setup_s", "warmups_s", "environment"}
    in: "run"               out: {"event": "run", "wall_s", "cpu_user_s", ..., "digest"}
    in: end of input        out: {"event": "done", "teardown_s", "peak_rss_bytes"}
    on any failure          out: {"event": "error", "message"}, and exit status 1

The process imports everything and says so before it reads the Config, so the harness can
start many workers at once, let them import in parallel, and then set them up one at a time on
a quiet host. The pool is started and primed (timed as
setup_s) and the warmup runs discarded before "ready"; each "run" then runs the work once. The
process stays alive between runs so that the harness can interleave configurations in rounds
without paying start-up each time.
"""

import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any

import psutil

from nogil_bench.bench.config import Config
from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.measure import peak_rss_bytes, usage_between, usage_by_pid
from nogil_bench.bench.stats import percentile
from nogil_bench.bench.target import TargetError
from nogil_bench.bench.workloads import build_work, tasks_of
from nogil_bench.core import runtime
from nogil_bench.runners import get_runner
from nogil_bench.runners.base import TaskFailedError, warm_up
from nogil_bench.workloads.digest import combine_digests
from nogil_bench.workloads.plugin import Work
from nogil_bench.workloads.registry import InvalidParamsError, UnknownWorkloadError

RUN = "run"


def build_watching_the_gil(config: Config) -> tuple[Work, list[str]]:
    """The configuration's work, built (its modules imported, its tasks made), and the modules
    whose import turned the GIL back on: runtime's watch records each one CPython warns about,
    every warning shown while building, whatever the filters say elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", RuntimeWarning)
        runtime.watch_gil_reenablers()
        seen = len(runtime.gil_reenabled_by())
        work = build_work(config)
    return work, runtime.gil_reenabled_by()[seen:]


def probe(config: Config, runner_names: Sequence[str]) -> dict[str, Any]:
    """Which runners cannot run the work, and why; whether importing it enabled the GIL."""
    work, enabled_by = build_watching_the_gil(config)
    unsupported = {
        name: reason
        for name in runner_names
        if (reason := work.unsupported_reason(get_runner(name))) is not None
    }
    return {
        "event": "probed",
        "unsupported": unsupported,
        "gil_enabled": runtime.is_gil_enabled(),
        "gil_enabled_by": enabled_by,
        "description": work.description,
    }


class Session:
    """The configuration's runner, started once, and its work run on demand."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.work, self.gil_enabled_by = build_watching_the_gil(config)
        self.tasks = tasks_of(self.work, config)
        self.runner = get_runner(config.runner)(config.workers)
        self.process = psutil.Process()
        self.digest: str | None = None

    def start(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.runner.__enter__()
        # Every worker started (processes spawned, interpreters created) before timing begins.
        warm_up(self.runner)
        setup_s = time.perf_counter() - started
        warmups_s = [self.run()["wall_s"] for _ in range(self.config.warmups)]
        environment = (
            describe_environment()
            | self.runner.environment()
            | {"gil_enabled_by": self.gil_enabled_by}
        )
        return {
            "event": "ready",
            "description": self.work.description,
            "setup_s": setup_s,
            "warmups_s": warmups_s,
            "environment": environment,
        }

    def run(self) -> dict[str, Any]:
        task_seconds: list[float] = []
        before = usage_by_pid(self.process)
        started = time.perf_counter()
        hashes = self.work.run(self.runner, self.tasks, task_seconds)
        wall_s = time.perf_counter() - started
        used = usage_between(before, usage_by_pid(self.process))
        digest = combine_digests(hashes)
        if self.digest is not None and digest != self.digest:
            raise RuntimeError(
                f"{self.config.workload} on {self.config.runner}: results differ between runs of "
                "one configuration, so they cannot be compared across runners: is the function "
                "non-deterministic (random, time, iteration order)?"
            )
        self.digest = digest
        result: dict[str, Any] = {
            "event": RUN,
            "wall_s": wall_s,
            "cpu_user_s": used.cpu_user_s,
            "cpu_system_s": used.cpu_system_s,
            "ctx_voluntary": used.ctx_voluntary,
            "ctx_involuntary": used.ctx_involuntary,
            # None from a ceiling's part with no task (more workers than tasks).
            "task_s_p50": percentile(task_seconds, 50) if task_seconds else None,
            "task_s_p95": percentile(task_seconds, 95) if task_seconds else None,
            "digest": digest,
        }
        if self.config.parts > 1:
            # A ceiling's share: the harness joins the parts' hashes into the whole's digest.
            result["hashes"] = [output_hash.hex() for output_hash in hashes]
        return result

    def finish(self) -> dict[str, Any]:
        peak = peak_rss_bytes(self.process)  # while a process pool's workers still count
        stopping = time.perf_counter()
        self.runner.__exit__(None, None, None)
        return {
            "event": "done",
            "teardown_s": time.perf_counter() - stopping,
            "peak_rss_bytes": peak,
        }

    def abort(self) -> None:
        self.runner.abandon()
        self.runner.__exit__(None, None, None)


def serve(requests: IO[str], replies: IO[str]) -> None:
    def reply(document: dict[str, Any]) -> None:
        replies.write(json.dumps(document) + "\n")
        replies.flush()

    reply({"event": "started"})
    line = requests.readline()
    if not line:
        return  # the harness gave up before sending a configuration
    request = json.loads(line)
    if "probe" in request:
        reply(probe(Config.from_json(request["config"]), request["probe"]))
        return
    session = Session(Config.from_json(request))
    try:
        reply(session.start())
        while line := requests.readline():
            if line.strip() != RUN:
                raise ValueError(f"unknown request {line.strip()!r}; expected {RUN!r}")
            reply(session.run())
    except BaseException:
        session.abort()
        raise
    reply(session.finish())


def describe_failure(error: Exception) -> str:
    """What the harness shows: for the user's mistakes (a bad reference, parameters, a task
    that raised) the message, with the task's own traceback; for the engine's, its traceback."""
    if isinstance(error, TaskFailedError):
        task_trace = "".join(traceback.format_exception(error.error)).rstrip()
        return f"{error}\n\nThe task's traceback:\n{task_trace}"
    if isinstance(error, (TargetError, InvalidParamsError, UnknownWorkloadError)):
        return str(error)
    return traceback.format_exc()


def main() -> int:
    # The protocol gets its own copy of stdout; anything printed by the work goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin, replies)
    except Exception as error:
        replies.write(json.dumps({"event": "error", "message": describe_failure(error)}) + "\n")
        replies.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
