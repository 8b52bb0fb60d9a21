"""The harness's side of the worker protocol: each configuration's process (K of them for a
ceiling), started fresh, asked to run, and always stopped.

Each worker leads its own process group, so killing the group also ends what it started (a
process pool's workers, its forkserver): no process outlives a measurement.
"""

import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

from nogil_bench.bench.config import Config
from nogil_bench.bench.host import read_cpu_jiffies, steal_share
from nogil_bench.bench.plan import SEQUENTIAL, Interpreter, Planned
from nogil_bench.bench.results import RunRecord
from nogil_bench.workloads.digest import combine_digests

STDERR_TAIL_CHARS = 4000
READ_CHUNK_BYTES = 65536


class MeasurementError(Exception):
    """The measurement could not complete; its worker processes have been stopped."""


class WorkerFailedError(MeasurementError):
    """A worker reported an error or died; the message names the configuration and says why."""


class RunTimeoutError(MeasurementError):
    """A worker took longer than the time allowed for one setup or run."""


@dataclass(frozen=True, slots=True)
class Ready:
    description: str
    setup_s: float
    warmups_s: list[float]
    environment: dict[str, object]


@dataclass(frozen=True, slots=True)
class Finished:
    teardown_s: float
    peak_rss_bytes: int


class WorkerProcess:
    """One `python -m nogil_bench.bench.worker` and its end of the line protocol."""

    def __init__(self, title: str, command: list[str], config: Config) -> None:
        self.title = title
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in kill()
        # The GIL mode is the -X option's; a PYTHON_GIL in this environment must not muddle it.
        env = {name: value for name, value in os.environ.items() if name != "PYTHON_GIL"}
        if config.function is not None and config.function.path:
            # On PYTHONPATH, not only this process's sys.path: the processes and
            # subinterpreters the runners start must import the user's modules too.
            env["PYTHONPATH"] = os.pathsep.join(
                [*config.function.path, *filter(None, [env.get("PYTHONPATH")])]
            )
        self._process = subprocess.Popen(  # noqa: S603 -- an interpreter the user chose, our module
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, line: str) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise self._failure("it exited before it was asked to work") from None

    def close_input(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()

    def receive(self, expected: str, timeout_s: float | None) -> dict[str, Any]:
        """The next reply, which must be the `expected` event."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        stdout = self._process.stdout
        assert stdout is not None
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([stdout], [], [], remaining)
            if not readable:
                raise RunTimeoutError(f"{self.title}: no reply within {timeout_s:g} s")
            chunk = os.read(stdout.fileno(), READ_CHUNK_BYTES)
            if not chunk:
                raise self._failure("it exited without replying")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        if reply.get("event") == "error":
            raise WorkerFailedError(f"{self.title} failed:\n{reply.get('message', '').strip()}")
        if reply.get("event") != expected:
            raise WorkerFailedError(f"{self.title}: expected {expected!r}, got {reply!r}")
        return reply

    def wait(self, timeout_s: float | None) -> None:
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise RunTimeoutError(f"{self.title}: did not exit within {timeout_s:g} s") from None

    def kill(self) -> None:
        """Stops the worker and everything it started, at once; safe to call more than once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()

    def _failure(self, what: str) -> WorkerFailedError:
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")[-STDERR_TAIL_CHARS:].strip()
        code = self._process.poll()
        status = "" if code is None else f" (exit status {code})"
        return WorkerFailedError(f"{self.title}: {what}{status}:\n{stderr}")


class Configuration:
    """One planned configuration's worker process, or a ceiling's K of them: each runs a K-th
    of the work sequentially, all are asked to run at once, and the slowest one's wall time is
    the ceiling's."""

    def __init__(self, item: Planned) -> None:
        self.item = item
        command = item.interpreter.command(item.gil)
        self.configs = (
            [
                replace(
                    item.config, runner=SEQUENTIAL, workers=1, part=part, parts=item.config.workers
                )
                for part in range(item.config.workers)
            ]
            if item.is_ceiling
            else [item.config]
        )
        self.workers: list[WorkerProcess] = []
        try:
            for config in self.configs:
                self.workers.append(WorkerProcess(_title(item, config), command, config))
        except BaseException:
            self.kill()
            raise

    def wait_started(self, timeout_s: float | None) -> None:
        for worker in self.workers:
            worker.receive("started", timeout_s)

    def set_up(self, timeout_s: float | None) -> Ready:
        self.send_config()
        return self.wait_ready(timeout_s)

    def send_config(self) -> None:
        """Asks the worker(s) to build the work, start the runner and warm up."""
        for worker, config in zip(self.workers, self.configs, strict=True):
            worker.send(json.dumps(config.to_json()))

    def wait_ready(self, timeout_s: float | None) -> Ready:
        replies = [worker.receive("ready", timeout_s) for worker in self.workers]
        return Ready(
            description=replies[0]["description"],
            setup_s=max(reply["setup_s"] for reply in replies),
            warmups_s=[
                max(walls) for walls in zip(*(r["warmups_s"] for r in replies), strict=True)
            ],
            environment=replies[0]["environment"],
        )

    def run(self, timeout_s: float | None) -> tuple[RunRecord, str]:
        """One run, as the worker(s) reported it with the host's steal meanwhile, and the
        digest of its outputs."""
        host_before = read_cpu_jiffies()
        for worker in self.workers:
            worker.send("run")
        replies = [worker.receive("run", timeout_s) for worker in self.workers]
        stolen = steal_share(host_before, read_cpu_jiffies())
        if len(replies) == 1:
            digest = replies[0]["digest"]
        else:
            # The parts' output hashes, in order, are the whole work's: the same digest as any
            # other configuration of the workload.
            digest = combine_digests(
                [bytes.fromhex(output_hash) for reply in replies for output_hash in reply["hashes"]]
            )
        # A ceiling's part may have had no task (fewer tasks than workers): no latency to tell.
        timed = [reply for reply in replies if reply["task_s_p50"] is not None]
        run = RunRecord(
            wall_s=max(reply["wall_s"] for reply in replies),
            cpu_user_s=sum(reply["cpu_user_s"] for reply in replies),
            cpu_system_s=sum(reply["cpu_system_s"] for reply in replies),
            ctx_voluntary=sum(reply["ctx_voluntary"] for reply in replies),
            ctx_involuntary=sum(reply["ctx_involuntary"] for reply in replies),
            # Percentiles do not combine exactly: the parts' median p50 and their largest p95.
            task_s_p50=statistics.median(reply["task_s_p50"] for reply in timed),
            task_s_p95=max(reply["task_s_p95"] for reply in timed),
            steal_share=stolen,
        )
        return run, digest

    def finish(self, timeout_s: float | None) -> Finished:
        replies = []
        for worker in self.workers:
            worker.close_input()
            replies.append(worker.receive("done", timeout_s))
            worker.wait(timeout_s)
        return Finished(
            teardown_s=max(reply["teardown_s"] for reply in replies),
            peak_rss_bytes=sum(reply["peak_rss_bytes"] for reply in replies),
        )

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()


@dataclass(frozen=True, slots=True)
class Probe:
    """What one worker process found before measuring: the runners that cannot run the work
    (with why), and whether importing it turned the GIL on, and by which modules."""

    unsupported: dict[str, str]
    gil_enabled: bool
    gil_enabled_by: list[str]
    description: str


def probe(
    interpreter: Interpreter, gil: int, config: Config, runners: list[str], timeout_s: float | None
) -> Probe:
    """Builds the work in a fresh worker process of the interpreter, in the GIL mode, and asks
    each runner whether it can run it: the user's code is imported there, never here."""
    title = f"{config.workload} checks ({interpreter.label}, GIL={gil})"
    worker = WorkerProcess(title, interpreter.command(gil), config)
    try:
        worker.receive("started", timeout_s)
        worker.send(json.dumps({"probe": runners, "config": config.to_json()}))
        reply = worker.receive("probed", timeout_s)
    finally:
        worker.kill()
    return Probe(
        unsupported=reply["unsupported"],
        gil_enabled=reply["gil_enabled"],
        gil_enabled_by=reply["gil_enabled_by"],
        description=reply["description"],
    )


def _title(item: Planned, config: Config) -> str:
    return item.title if config.parts == 1 else f"{item.title} part {config.part + 1}"
