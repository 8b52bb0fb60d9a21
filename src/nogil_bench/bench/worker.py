"""One benchmark configuration, alive in its own fresh process for the whole measurement.

    python -X gil=N -m nogil_bench.bench.worker

A line protocol on stdin and stdout, one JSON document per line:

    (once imported)         out: {"event": "started"}
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
from typing import IO, Any

import psutil

from nogil_bench.bench.config import Config
from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.measure import peak_rss_bytes, usage_between, usage_by_pid
from nogil_bench.bench.stats import percentile
from nogil_bench.bench.workloads import build_workload
from nogil_bench.runners import get_runner
from nogil_bench.runners.base import warm_up
from nogil_bench.workloads.images import combine_digests

RUN = "run"


class Session:
    """The configuration's runner, started once, and its work run on demand."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = build_workload(config)
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
        environment = describe_environment() | self.runner.environment()
        return {
            "event": "ready",
            "setup_s": setup_s,
            "warmups_s": warmups_s,
            "environment": environment,
        }

    def run(self) -> dict[str, Any]:
        task_seconds: list[float] = []
        before = usage_by_pid(self.process)
        started = time.perf_counter()
        hashes = self.workload.run(self.runner, task_seconds)
        wall_s = time.perf_counter() - started
        used = usage_between(before, usage_by_pid(self.process))
        digest = combine_digests(hashes)
        if self.digest is not None and digest != self.digest:
            raise RuntimeError(f"{self.config}: outputs differ between runs of one configuration")
        self.digest = digest
        result: dict[str, Any] = {
            "event": RUN,
            "wall_s": wall_s,
            "cpu_user_s": used.cpu_user_s,
            "cpu_system_s": used.cpu_system_s,
            "ctx_voluntary": used.ctx_voluntary,
            "ctx_involuntary": used.ctx_involuntary,
            "task_s_p50": percentile(task_seconds, 50),
            "task_s_p95": percentile(task_seconds, 95),
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
    session = Session(Config.from_json(json.loads(line)))
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


def main() -> int:
    # The protocol gets its own copy of stdout; anything printed by the work goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin, replies)
    except Exception:
        replies.write(json.dumps({"event": "error", "message": traceback.format_exc()}) + "\n")
        replies.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
