"""The serving modes measured (issue 25, item 2): each `nogil-bench serve --server S --workers N`
with the GIL off and on, against one database, interleaved in rounds.

    .venv/bin/python scripts/bench_serve.py                      # every mode, GIL 0 and 1
    .venv/bin/python scripts/bench_serve.py --rounds 3 --duration 5 --markdown serve.md
    .venv/bin/python scripts/bench_serve.py --modes uvicorn,granian:2 --gil 0 --json serve.json

What it measures, per mode (server x workers x GIL) and round, with wrk (or --tool python) at
--connections connections for --duration seconds each, after a warm-up of --warmup seconds:

  /users/me  GET /api/v1/users/me with a bearer token: an authenticated read
  /jobs      GET /api/v1/jobs: a list of that user's 20 jobs (created once, finished)
  submit     POST /api/v1/jobs: a tiny single job (8x8, invert, sequential runner), by a second
             user; counted as accepted (202) per second. The server's executor runs them
             meanwhile, as it would in service.

Each rate is 2xx answers per second (anything else is counted and reported, not a success);
p99 is wrk's latency percentile. Peak RSS is the largest sum of the resident memory of the
server's processes (the server and all its children: Gunicorn's arbiter and workers),
sampled every 0.2 s from its start to its stop; PSS (pages shared after a fork counted once,
split between the processes sharing them) is summed once, right after the load.

How: one data directory (SQLite) for every server. A set-up server creates the schema, the two
users and the 20 jobs, then stops. Each round starts each mode once, in a rotated order, one
server at a time (started, measured, stopped with SIGTERM: they never compete). Between slots,
with no server running, the submitter's jobs are deleted from the database, so that every slot
starts from the same data. A mode that cannot start in the first round (Granian with the GIL
on refuses to) is reported "not available" with the reason, and not tried again.

Statistics, over rounds: each figure's mean and its Student-t 95% interval (rounds - 1
degrees of freedom); each mode against the baseline (uvicorn, one process, the first --gil
mode: the one mode that serves with the GIL on and off) by the ratio of rates paired by
round: the geometric mean of the per-round ratios with a t interval on their logs, and a
verdict (faster / slower only when the whole interval is on one side of 1x). With 3 rounds t
is 4.3: the intervals are wide, honestly.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from live_server import NOGIL_BENCH, SERVER_ENV, free_port
from load_api import TINY_JOB_BODY, TRANSPORT_ERRORS, Account, Connection, create_account

from nogil_bench.bench import stats
from nogil_bench.serving import SERVERS

DEFAULT_MODES = "uvicorn:1,gunicorn:1,gunicorn:2,granian:1,granian:2"
BASELINE_SERVER, BASELINE_WORKERS = "uvicorn", 1
LIST_ROWS = 20  # GET /jobs's default page, and the reader's jobs
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0  # the drain takes SHUTDOWN_GRACE_SECONDS (2 s here), Gunicorn 10 s more
SETUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 2.0  # wrk's default: a later answer is a timeout error
RSS_SAMPLE_S = 0.2
SETTLE_S = 0.5  # between runs: the previous run's backlog drains
MARKER = "BENCH_SERVE "
LOG_TAIL_LINES = 8
MIB = 1024 * 1024

ME = "/api/v1/users/me"
JOBS = "/api/v1/jobs"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: bytes | None = None


ENDPOINTS = (
    Endpoint("/users/me", "GET", ME),
    Endpoint("/jobs", "GET", JOBS),
    Endpoint("submit", "POST", JOBS, TINY_JOB_BODY),
)

# wrk: the method and body (for a POST), a count of answers outside 2xx, and the summary as one
# JSON line. %s: the request set-up.
WRK_SCRIPT = """
%s
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local outside = 0
  for _, thread in ipairs(threads) do
    outside = outside + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_SERVE {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"socket_errors\\": %%d, "
    .. "\\"non2xx\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, outside,
    latency:percentile(50), latency:percentile(99)))
end
"""


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True, order=True)
class Mode:
    """A serving mode: a server, its workers, and the GIL's state in its processes."""

    server: str
    workers: int
    gil: int

    @property
    def label(self) -> str:
        return f"{self.server} w{self.workers} GIL{self.gil}"

    @property
    def is_baseline_shape(self) -> bool:
        return (self.server, self.workers) == (BASELINE_SERVER, BASELINE_WORKERS)


@dataclass(frozen=True)
class Options:
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    modes: tuple[Mode, ...]
    tool: str  # "wrk" or "python"
    json_path: Path | None
    markdown_path: Path | None
    logs_dir: Path | None = None

    @property
    def baseline(self) -> Mode | None:
        """uvicorn with one process at the first GIL mode asked for: it serves in both."""
        return next((mode for mode in self.modes if mode.is_baseline_shape), None)


def parse_shapes(text: str) -> list[tuple[str, int]]:
    """'uvicorn,gunicorn:2' -> [(uvicorn, 1), (gunicorn, 2)]; a server without :N means 1 and
    2 workers (uvicorn: 1 only)."""
    shapes: list[tuple[str, int]] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        server, _, workers_text = entry.partition(":")
        if server not in SERVERS:
            raise ValueError(f"unknown server {server!r}: choose from {', '.join(SERVERS)}")
        if not workers_text:
            counts = [1] if server == "uvicorn" else [1, 2]
        elif workers_text.isdigit() and int(workers_text) >= 1:
            counts = [int(workers_text)]
        else:
            raise ValueError(f"{entry!r}: workers must be a whole number >= 1")
        if server == "uvicorn" and counts != [1]:
            raise ValueError("uvicorn serves from one process: uvicorn:1 only")
        shapes += [(server, count) for count in counts if (server, count) not in shapes]
    if not shapes:
        raise ValueError("no modes given")
    return shapes


def parse_gil(text: str) -> list[int]:
    modes: list[int] = []
    for raw in text.split(","):
        entry = raw.strip()
        if entry not in {"0", "1"}:
            raise ValueError(f"GIL modes are 0 and 1, not {entry!r}")
        if int(entry) not in modes:
            modes.append(int(entry))
    return modes


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="default: %(default)s")
    parser.add_argument(
        "--duration", type=int, default=5, help="seconds per endpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds before each run, not counted (default: 1)"
    )
    parser.add_argument("--connections", type=int, default=50, help="default: %(default)s")
    parser.add_argument(
        "--modes",
        default=DEFAULT_MODES,
        help="server[:workers], comma-separated; a server alone: 1 and 2 workers "
        "(default: %(default)s)",
    )
    parser.add_argument("--gil", default="0,1", help="GIL modes (PYTHON_GIL), default: 0,1")
    parser.add_argument(
        "--tool", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if found"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the tables here")
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the servers' logs here (default: dropped)"
    )
    args = parser.parse_args(argv)
    try:
        shapes = parse_shapes(args.modes)
        gil_modes = parse_gil(args.gil)
    except ValueError as error:
        parser.error(str(error))
    if args.rounds < 1 or args.duration < 1 or args.connections < 1 or args.warmup < 0:
        parser.error("--rounds, --duration and --connections must be >= 1, --warmup >= 0")
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    elif tool == "wrk" and shutil.which("wrk") is None:
        parser.error("--tool wrk: wrk is not on PATH")
    # GIL-major: the baseline (uvicorn, first GIL mode) comes first.
    modes = tuple(Mode(server, workers, gil) for gil in gil_modes for server, workers in shapes)
    return Options(
        rounds=args.rounds,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        modes=modes,
        tool=tool,
        json_path=args.json,
        markdown_path=args.markdown,
        logs_dir=args.logs,
    )


def rotated[T](items: Sequence[T], round_index: int) -> list[T]:
    """Round r starts at item r: each item takes each position in turn."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Estimate:
    """A mean over rounds with its Student-t 95% half-width (None with one round)."""

    mean: float
    half_width: float | None
    n: int


def mean_ci(values: Sequence[float]) -> Estimate | None:
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Estimate(mean, None, len(values))
    t = stats.t_quantile(stats.CONFIDENCE, len(values) - 1)
    return Estimate(mean, t * statistics.stdev(values) / math.sqrt(len(values)), len(values))


@dataclass(frozen=True)
class RatioEstimate:
    """Candidate rate / baseline rate, paired by round: the geometric mean of the rounds'
    ratios, a t interval on their logs, and the verdict that interval supports."""

    ratio: float
    low: float | None
    high: float | None
    n: int
    verdict: str
    text: str


def ratio_ci(baseline: Mapping[int, float], candidate: Mapping[int, float]) -> RatioEstimate | None:
    """Rates by round; only rounds that both measured are paired."""
    paired = sorted(baseline.keys() & candidate.keys())
    ratios = [candidate[r] / baseline[r] for r in paired if baseline[r] > 0 and candidate[r] > 0]
    if not ratios:
        return None
    logs = [math.log(ratio) for ratio in ratios]
    ratio = math.exp(statistics.fmean(logs))
    if len(logs) < 2:
        text = f"{ratio:.2f}x, no interval from {len(logs)} round"
        return RatioEstimate(ratio, None, None, len(logs), stats.Verdict.UNKNOWN, text)
    t = stats.t_quantile(stats.CONFIDENCE, len(logs) - 1)
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    low, high = math.exp(statistics.fmean(logs) - half), math.exp(statistics.fmean(logs) + half)
    verdict = stats.verdict_of(low, high)
    return RatioEstimate(
        ratio, low, high, len(logs), verdict, stats.describe(verdict, ratio, low, high)
    )


# ---------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Run:
    """One load run of one endpoint."""

    requests: int  # answers (any status)
    ok: int  # 2xx answers
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


@dataclass
class Slot:
    """One mode's turn in one round."""

    mode: Mode
    round: int
    runs: dict[str, Run] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    pss_bytes: int | None = None
    gil_in_request: bool | None = None
    processes: int = 0  # the most seen at once: the server and its children
    exit_status: int | None = None
    stop_s: float | None = None
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)  # when it failed or did not stop cleanly


@dataclass(frozen=True)
class Row:
    """One mode's figures over its rounds."""

    mode: Mode
    rates: dict[str, Estimate | None]
    p99s: dict[str, Estimate | None]
    ratios: dict[str, RatioEstimate | None]  # empty for the baseline itself
    peak_rss_bytes: int | None  # the largest over rounds
    pss_bytes: float | None  # the median over rounds
    non_2xx: int
    socket_errors: int
    rounds: int
    gil_in_request: list[bool | None]
    unavailable: str | None = None


def rates_by_round(slots: Sequence[Slot], mode: Mode, endpoint: str) -> dict[int, float]:
    return {
        slot.round: slot.runs[endpoint].rate
        for slot in slots
        if slot.mode == mode and endpoint in slot.runs
    }


def summarize(
    modes: Sequence[Mode], slots: Sequence[Slot], unavailable: Mapping[Mode, str]
) -> list[Row]:
    baseline = next((mode for mode in modes if mode.is_baseline_shape), None)
    rows = []
    for mode in modes:
        mine = [slot for slot in slots if slot.mode == mode and slot.runs]
        rates: dict[str, Estimate | None] = {}
        p99s: dict[str, Estimate | None] = {}
        ratios: dict[str, RatioEstimate | None] = {}
        for endpoint in ENDPOINTS:
            runs = [slot.runs[endpoint.name] for slot in mine if endpoint.name in slot.runs]
            rates[endpoint.name] = mean_ci([run.rate for run in runs])
            p99s[endpoint.name] = mean_ci([run.p99_ms for run in runs if run.p99_ms is not None])
            if baseline is not None and mode != baseline:
                ratios[endpoint.name] = ratio_ci(
                    rates_by_round(slots, baseline, endpoint.name),
                    rates_by_round(slots, mode, endpoint.name),
                )
        pss = [slot.pss_bytes for slot in mine if slot.pss_bytes is not None]
        rows.append(
            Row(
                mode=mode,
                rates=rates,
                p99s=p99s,
                ratios=ratios,
                peak_rss_bytes=max((slot.peak_rss_bytes for slot in mine), default=None),
                pss_bytes=statistics.median(pss) if pss else None,
                non_2xx=sum(run.non_2xx for slot in mine for run in slot.runs.values()),
                socket_errors=sum(run.socket_errors for slot in mine for run in slot.runs.values()),
                rounds=len(mine),
                gil_in_request=[slot.gil_in_request for slot in mine],
                unavailable=unavailable.get(mode),
            )
        )
    return rows


@dataclass(frozen=True)
class Duel:
    """Worker threads of one free-threaded process (Granian, GIL off) against as many worker
    processes (Gunicorn), paired by round: the threads' rate over the processes'."""

    workers: int
    threads: Mode
    processes: Mode
    ratios: dict[str, RatioEstimate | None]
    pss_ratio: float | None  # the threads' median PSS over the processes'


def duels(rows: Sequence[Row], slots: Sequence[Slot]) -> list[Duel]:
    measured = [row for row in rows if row.unavailable is None and row.rounds]
    found = []
    for mine in measured:
        threads = mine.mode
        if threads.server != "granian" or threads.gil != 0:
            continue
        for other in measured:
            processes = other.mode
            if processes.server != "gunicorn" or processes.workers != threads.workers:
                continue
            ours, theirs = mine.pss_bytes, other.pss_bytes
            found.append(
                Duel(
                    workers=threads.workers,
                    threads=threads,
                    processes=processes,
                    ratios={
                        endpoint.name: ratio_ci(
                            rates_by_round(slots, processes, endpoint.name),
                            rates_by_round(slots, threads, endpoint.name),
                        )
                        for endpoint in ENDPOINTS
                    },
                    pss_ratio=ours / theirs if ours and theirs else None,
                )
            )
    return found


# ---------------------------------------------------------------------------- tables


def fmt_estimate(estimate: Estimate | None, digits: int = 0) -> str:
    if estimate is None:
        return "-"
    if estimate.half_width is None:
        return f"{estimate.mean:,.{digits}f} (1 round)"
    return f"{estimate.mean:,.{digits}f} ± {estimate.half_width:,.{digits}f}"


def fmt_mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f} MB"


def fmt_ratio(estimate: RatioEstimate | None) -> str:
    return "-" if estimate is None else estimate.text


def markdown_tables(
    rows: Sequence[Row], baseline: Mode | None, threads_vs_processes: Sequence[Duel] = ()
) -> str:
    """The figures (mean ± 95% CI half-width over rounds); each mode's rates against the
    baseline's; worker threads against worker processes."""
    names = [endpoint.name for endpoint in ENDPOINTS]
    head = "| mode | GIL | workers | " + " | ".join(
        f"`{name}` req/s | `{name}` p99 ms" for name in names
    )
    lines = [
        head + " | peak RSS | PSS | non-2xx / socket errors |",
        "|---|---|---|" + "---:|---:|" * len(names) + "---:|---:|---:|",
    ]
    for row in rows:
        prefix = f"| {row.mode.server} | {row.mode.gil} | {row.mode.workers} |"
        if row.unavailable is not None:
            lines.append(
                f"{prefix} not available: {row.unavailable} |" + " |" * (2 * len(names) + 2)
            )
            continue
        cells = [f"{fmt_estimate(row.rates[n])} | {fmt_estimate(row.p99s[n], 1)}" for n in names]
        lines.append(
            f"{prefix} {' | '.join(cells)} | {fmt_mib(row.peak_rss_bytes)} | "
            f"{fmt_mib(row.pss_bytes)} | {row.non_2xx} / {row.socket_errors} |"
        )
    if baseline is not None and any(
        row.mode != baseline and row.unavailable is None for row in rows
    ):
        lines += ratio_table(rows, baseline, names)
    if threads_vs_processes:
        lines += duel_table(threads_vs_processes, names)
    return "\n".join(lines) + "\n"


def ratio_table(rows: Sequence[Row], baseline: Mode, names: Sequence[str]) -> list[str]:
    lines = [
        "",
        f"Against {baseline.server}, {baseline.workers} process, GIL {baseline.gil} "
        "(requests/s, paired by round: geometric mean ratio [95% CI]):",
        "",
        "| mode | GIL | workers | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        if row.mode == baseline or row.unavailable is not None:
            continue
        ratios = " | ".join(fmt_ratio(row.ratios.get(name)) for name in names)
        lines.append(f"| {row.mode.server} | {row.mode.gil} | {row.mode.workers} | {ratios} |")
    return lines


def duel_table(found: Sequence[Duel], names: Sequence[str]) -> list[str]:
    lines = [
        "",
        "Worker threads (Granian, one process, GIL off) against as many worker processes "
        "(Gunicorn): the threads' requests/s over the processes', paired by round [95% CI]:",
        "",
        "| workers | processes' GIL | "
        + " | ".join(f"`{name}`" for name in names)
        + " | threads' PSS / processes' |",
        "|---|---|" + "---|" * len(names) + "---:|",
    ]
    for duel in found:
        ratios = " | ".join(fmt_ratio(duel.ratios.get(name)) for name in names)
        pss = "-" if duel.pss_ratio is None else f"{duel.pss_ratio:.2f}"
        lines.append(f"| {duel.workers} | {duel.processes.gil} | {ratios} | {pss} |")
    return lines


# ---------------------------------------------------------------------------- load


def wrk_script(endpoint: Endpoint) -> str:
    setup = ""
    if endpoint.method != "GET":
        setup = f'wrk.method = "{endpoint.method}"\n'
    if endpoint.body is not None:
        setup += f"wrk.body = {json.dumps(endpoint.body.decode())}\n"
        setup += 'wrk.headers["Content-Type"] = "application/json"\n'
    return WRK_SCRIPT % setup


def run_wrk(
    base_url: str, endpoint: Endpoint, headers: Mapping[str, str], seconds: int, connections: int
) -> Run:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(wrk_script(endpoint))
        script.flush()
        command = [
            "wrk",
            f"-t{min(connections, os.cpu_count() or 1)}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={REQUEST_TIMEOUT_S:.0f}s",
            "-s",
            script.name,
        ]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        finished = subprocess.run(  # noqa: S603 - wrk, our arguments
            [*command, base_url + endpoint.path],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    lines = [line for line in finished.stdout.splitlines() if line.startswith(MARKER)]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk failed ({finished.returncode}): {finished.stderr or finished.stdout}"
        )
    summary = json.loads(lines[-1].removeprefix(MARKER))
    requests = summary["requests"]
    return Run(
        requests=requests,
        ok=requests - summary["non2xx"],
        duration_s=summary["duration_us"] / 1e6,
        non_2xx=summary["non2xx"],
        socket_errors=summary["socket_errors"],
        p50_ms=summary["p50_us"] / 1000 if requests else None,
        p99_ms=summary["p99_us"] / 1000 if requests else None,
    )


def run_python(
    base_url: str, endpoint: Endpoint, headers: Mapping[str, str], seconds: int, connections: int
) -> Run:
    """wrk's job with threads, one keep-alive connection each (the load generator then takes
    more CPU from the server than wrk does)."""
    send_headers = dict(headers)
    if endpoint.body is not None:
        send_headers["Content-Type"] = "application/json"
    outcomes: list[list[tuple[int | None, float]]] = [[] for _ in range(connections)]
    barrier = threading.Barrier(connections + 1)
    stop_at = 0.0

    def client(index: int) -> None:
        connection = Connection(base_url, REQUEST_TIMEOUT_S)
        barrier.wait()
        while time.monotonic() < stop_at:
            try:
                reply = connection.send(
                    endpoint.method, endpoint.path, body=endpoint.body, headers=send_headers
                )
            except TRANSPORT_ERRORS:
                outcomes[index].append((None, 0.0))
                continue
            outcomes[index].append((reply.status, reply.latency_s))
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    stop_at = time.monotonic() + seconds
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    duration_s = time.perf_counter() - started
    answered = [(status, latency) for one in outcomes for status, latency in one if status]
    latencies_ms = sorted(latency * 1000 for _, latency in answered)
    non_2xx = sum(not 200 <= status < 300 for status, _ in answered)
    return Run(
        requests=len(answered),
        ok=len(answered) - non_2xx,
        duration_s=duration_s,
        non_2xx=non_2xx,
        socket_errors=sum(status is None for one in outcomes for status, _ in one),
        p50_ms=stats.percentile(latencies_ms, 50) if latencies_ms else None,
        p99_ms=stats.percentile(latencies_ms, 99) if latencies_ms else None,
    )


# ---------------------------------------------------------------------------- servers


class Server:
    """`nogil-bench serve --server S --workers N` with PYTHON_GIL set, in a session of its own,
    on the shared data directory; only the settings given here (none of the caller's
    NOGIL_BENCH_* variables)."""

    def __init__(
        self,
        mode: Mode,
        workdir: Path,
        settings: Mapping[str, str],
        logs_dir: Path | None = None,
        command: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """`command` replaces `nogil-bench serve ...`; it gets the port as `{port}`.
        `extra_env` is added to the server's environment (PYTHONPATH, say)."""
        self.mode = mode
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = (
            logs_dir or workdir
        ) / f"server-{mode.server}-w{mode.workers}-gil{mode.gil}.log"
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("NOGIL_BENCH_")
        }
        env |= SERVER_ENV | {f"NOGIL_BENCH_{name}": value for name, value in settings.items()}
        env["PYTHON_GIL"] = str(mode.gil)
        env |= extra_env or {}
        serve = [
            str(NOGIL_BENCH),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--server",
            mode.server,
            "--workers",
            str(mode.workers),
        ]
        if command is not None:
            serve = [part.format(port=self.port) for part in command]
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own console script
                serve,
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def wait_live(self, path: str = "/health/live") -> str | None:
        """None once `path` answers 200; else why not (the server's last line)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        connection = Connection(self.base_url, 2.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    lines = [line for line in self.output().splitlines() if line.strip()]
                    last = lines[-1].strip() if lines else "no output"
                    return f"exit status {self.process.returncode}: {last}"
                with contextlib.suppress(*TRANSPORT_ERRORS):
                    if connection.send("GET", path).status == 200:
                        return None
                time.sleep(0.1)
            return f"{path} did not answer 200 within {START_TIMEOUT_S:.0f} s"
        finally:
            connection.close()

    def gil_in_request(self) -> bool | None:
        connection = Connection(self.base_url, 10.0)
        try:
            reply = connection.call("GET", "/health")
            value = reply.json().get("gil_enabled") if reply.status == 200 else None
        except (*TRANSPORT_ERRORS, ValueError):
            value = None
        finally:
            connection.close()
        return value if isinstance(value, bool) else None

    def members(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> tuple[int, int]:
        """The summed RSS of the server and its children, and how many they are."""
        total = count = 0
        for member in self.members():
            with contextlib.suppress(psutil.Error):
                total += member.memory_info().rss
                count += 1
        return total, count

    def pss_bytes(self) -> int | None:
        total = 0
        try:
            for member in self.members():
                total += member.memory_full_info().pss
        except psutil.Error, AttributeError:
            return None
        return total

    def stop(self) -> tuple[int, float]:
        """SIGTERM, then its exit status and how long it took; SIGKILL to its group if it
        hangs. Any of its children still alive after it exited (none should be) are killed."""
        started = time.monotonic()
        children = self.members()[1:]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for child in children:  # psutil checks it is the same process (its start time)
            with contextlib.suppress(psutil.Error):
                child.kill()
        return self.process.returncode, time.monotonic() - started


class RssSampler:
    """The largest summed RSS of a server's processes, sampled until stopped."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_bytes = 0
        self.most_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total, count = self.server.rss_bytes()
            self.peak_bytes = max(self.peak_bytes, total)
            self.most_processes = max(self.most_processes, count)
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Fixture:
    reader: Account  # owns the 20 listed jobs
    submitter: Account  # posts the measured submissions
    submitter_id: Any  # its user id as SQLite stores it (None on another database)
    database: Path | None  # the SQLite file (None: the settings name another database)


def server_settings(data_dir: Path, secret_key: str) -> dict[str, str]:
    """One secret (tokens from the set-up work on every server), tokens valid for the whole
    run, and no submission limit or queue cap in the way of the submission runs."""
    return {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": secret_key,
        "ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
        "SUBMISSION_RATE_LIMIT": "1000000/second",
        "MAX_QUEUED_JOBS_PER_USER": "10000000",
        "MAX_QUEUED_JOBS": "10000000",
    }


def prepare(workdir: Path, settings: Mapping[str, str]) -> Fixture:
    """A uvicorn server, not measured: the schema, two users, the reader's 20 finished jobs."""
    server = Server(Mode(BASELINE_SERVER, BASELINE_WORKERS, 0), workdir, settings)
    try:
        if (reason := server.wait_live()) is not None:
            raise SystemExit(f"the set-up server did not start: {reason} (log: {server.log_path})")
        connection = Connection(server.base_url, 30.0)
        reader = create_account(connection, "reader")
        submitter = create_account(connection, "submitter")
        headers = {**reader.headers, "Content-Type": "application/json"}
        for _ in range(LIST_ROWS):
            reply = connection.call("POST", JOBS, body=TINY_JOB_BODY, headers=headers)
            if reply.status != 202:
                raise SystemExit(f"set-up submission: {reply.status} {reply.body[:200]!r}")
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while True:
            page = connection.call("GET", JOBS, headers=reader.headers).json()
            if page["count"] == LIST_ROWS and all(
                job["status"] == "succeeded" for job in page["data"]
            ):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the set-up jobs did not all succeed: {page}")
            time.sleep(0.5)
        connection.close()
    finally:
        server.stop()
    if "DATABASE_URL" in settings:
        return Fixture(reader, submitter, None, None)
    database = Path(settings["DATA_DIR"]) / "nogil_bench.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        found = db.execute('SELECT id FROM "user" WHERE email = ?', (submitter.email,)).fetchone()
    if found is None:
        raise SystemExit(f"the submitter {submitter.email} is not in {database}")
    return Fixture(reader, submitter, found[0], database)


def reset(fixture: Fixture) -> int:
    """With no server running: the submitter's jobs deleted, the WAL folded back. Returns how
    many jobs went."""
    assert fixture.database is not None, "reset() works on the SQLite file only"
    with contextlib.closing(sqlite3.connect(fixture.database)) as db:
        deleted = db.execute("DELETE FROM job WHERE owner_id = ?", (fixture.submitter_id,))
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted.rowcount


# ---------------------------------------------------------------------------- the run


def measure_slot(
    mode: Mode, round_index: int, options: Options, workdir: Path, settings: Mapping[str, str],
    fixture: Fixture,
) -> tuple[Slot, str | None]:  # fmt: skip
    """One mode's turn: start, load each endpoint, stop. The reason when it did not start."""
    slot = Slot(mode, round_index)
    load = run_wrk if options.tool == "wrk" else run_python
    server = Server(mode, workdir, settings, options.logs_dir)
    with RssSampler(server) as sampler:
        try:
            if (reason := server.wait_live()) is not None:
                return slot, reason
            slot.gil_in_request = server.gil_in_request()
            for endpoint in ENDPOINTS:
                account = fixture.submitter if endpoint.name == "submit" else fixture.reader
                time.sleep(SETTLE_S)
                if options.warmup_s:
                    load(
                        server.base_url,
                        endpoint,
                        account.headers,
                        options.warmup_s,
                        options.connections,
                    )
                    time.sleep(SETTLE_S)
                run = load(
                    server.base_url,
                    endpoint,
                    account.headers,
                    options.duration_s,
                    options.connections,
                )
                slot.runs[endpoint.name] = run
                progress(
                    f"  {mode.label} {endpoint.name}: {run.rate:,.0f}/s, p99 "
                    f"{run.p99_ms or 0:.1f} ms, non-2xx {run.non_2xx}, socket {run.socket_errors}"
                )
            slot.pss_bytes = server.pss_bytes()
        except (RuntimeError, subprocess.TimeoutExpired, *TRANSPORT_ERRORS) as error:
            slot.error = str(error)[:300]
            progress(f"  {mode.label}: {slot.error}")
        finally:
            slot.exit_status, slot.stop_s = server.stop()
            if slot.error is not None or slot.exit_status != 0:
                slot.log_tail = server.output().splitlines()[-LOG_TAIL_LINES:]
    slot.peak_rss_bytes = sampler.peak_bytes
    slot.processes = sampler.most_processes
    return slot, None


@dataclass
class Results:
    config: dict[str, Any]
    environment: dict[str, Any]
    slots: list[Slot] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    markdown: str = ""


def environment(tool: str) -> dict[str, Any]:
    return {
        "date_utc": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "python": f"Python {platform.python_version()}"
        + (" free-threading" if "free-threading" in sys.version else ""),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "tool": "wrk" if tool == "wrk" else "python (threads, http.client keep-alive)",
        "database": "SQLite (WAL), one data directory for every server",
    }


def run(options: Options) -> Results:
    results = Results(
        config={
            "rounds": options.rounds,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "connections": options.connections,
            "modes": [mode.label for mode in options.modes],
            "command": " ".join(["scripts/bench_serve.py", *sys.argv[1:]]),
        },
        environment=environment(options.tool),
    )
    unavailable: dict[Mode, str] = {}
    with tempfile.TemporaryDirectory(prefix="nogil-bench-serve-") as tmp:
        workdir = Path(tmp)
        if options.logs_dir is not None:
            options.logs_dir.mkdir(parents=True, exist_ok=True)
        settings = server_settings(workdir / "data", secrets.token_urlsafe(32))
        progress("set-up: schema, two users, 20 jobs")
        fixture = prepare(workdir, settings)
        reset(fixture)
        for round_index in range(options.rounds):
            order = rotated(
                [mode for mode in options.modes if mode not in unavailable], round_index
            )
            progress(
                f"round {round_index + 1}/{options.rounds}: {', '.join(m.label for m in order)}"
            )
            for mode in order:
                slot, reason = measure_slot(mode, round_index, options, workdir, settings, fixture)
                deleted = reset(fixture)
                if reason is not None:
                    if round_index == 0:
                        unavailable[mode] = reason
                        progress(f"  {mode.label}: not available: {reason}")
                    else:
                        slot.error = reason
                        progress(f"  {mode.label}: did not start: {reason}")
                progress(f"  {mode.label}: stopped ({slot.exit_status}), {deleted} jobs reset")
                results.slots.append(slot)
    results.unavailable = {mode.label: reason for mode, reason in unavailable.items()}
    results.rows = summarize(options.modes, results.slots, unavailable)
    results.markdown = report(results, options)
    return results


def report(results: Results, options: Options) -> str:
    env = results.environment
    lines = [
        f"{env['date_utc']} UTC, {env['cpus']} CPUs, {env['python']}, load average at start "
        f"{env['load_average_1min_at_start']}; {env['tool']} at {options.connections} "
        f"connections, {options.duration_s} s per endpoint after {options.warmup_s} s of warm-up, "
        f"{options.rounds} rounds. Each cell: mean ± 95% CI half-width over rounds.",
        "",
        markdown_tables(results.rows, options.baseline, duels(results.rows, results.slots)),
    ]
    seen = {
        row.mode.label: row.gil_in_request
        for row in results.rows
        if row.unavailable is None and any(g != bool(row.mode.gil) for g in row.gil_in_request)
    }
    if seen:
        lines.append(f"GIL inside a request differed from PYTHON_GIL: {seen}")
    failed = [slot for slot in results.slots if slot.error is not None]
    lines += [f"round {s.round + 1}, {s.mode.label}: {s.error}" for s in failed]
    bad_stops = [s for s in results.slots if s.exit_status not in {0, None} and s.runs]
    lines += [
        f"round {s.round + 1}, {s.mode.label}: exit status {s.exit_status} "
        f"{s.stop_s or 0:.1f} s after SIGTERM"
        + (" (had not exited: killed)" if s.exit_status == -signal.SIGKILL else "")
        for s in bad_stops
    ]
    return "\n".join(lines).rstrip() + "\n"


def to_json(results: Results) -> dict[str, Any]:
    document = asdict(results)
    document["markdown"] = results.markdown
    return document


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.baseline is None:
        progress("no uvicorn:1 in --modes: no ratios (the baseline is uvicorn, one process)")
    results = run(options)
    print(results.markdown)
    if options.markdown_path is not None:
        options.markdown_path.write_text(results.markdown)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(to_json(results), indent=2, default=str) + "\n")
    return 0 if all(slot.error is None for slot in results.slots) else 1


if __name__ == "__main__":
    sys.exit(main())
