"""The service under load (issue 12's measurement): submissions, completion, reads, a saturated
host, and two processes with one killed, each against the issue's targets.

    .venv/bin/python scripts/load_api.py                                 # every phase, fresh server
    .venv/bin/python scripts/load_api.py --clients 50 --jobs-per-client 20 --duration 5
    .venv/bin/python scripts/load_api.py --phases submit,reads --json load.json
    .venv/bin/python scripts/load_api.py --database-url postgresql+psycopg://u:p@127.0.0.1/db
    .venv/bin/python scripts/load_api.py --database-url mysql+pymysql://u:p@127.0.0.1/db
    .venv/bin/python scripts/load_api.py --url http://127.0.0.1:8000     # a running service
    .venv/bin/python scripts/load_api.py --broker                        # the queue on Celery
    .venv/bin/python scripts/load_api.py --broker --broker-url amqp://...  # ... on RabbitMQ

Phases (--phases; they run in this order):

  submit     N clients, each its own user (--one-user: one shared) with one keep-alive connection,
             start together and post M tiny single jobs each. Then every accepted job is waited
             for, and each user's stored jobs are compared with the 202s received:
               lost     accepted, not succeeded at the end (or timed out)
               phantom  stored, but its submission did not get a 202
               doubled  jobs stored beyond a user's count of 202s
             Completion rate: succeeded jobs over first queued_at to last finished_at (server
             timestamps). Queued leftovers of a timed-out wait are cancelled afterwards.
  reads      wrk (or --read-tool python: threads with http.client) at 50 connections, D seconds
             per route: GET /health/live, then /api/v1/users/me and /api/v1/jobs with a token; each
             authenticated rate as a share of liveness's.
  saturated  a pure-Python batch (box_blur, threads runner, one worker per CPU); once it runs,
             GET /api/v1/jobs (and /health/live, as a control) from one client at a steady rate for
             D seconds; valid only when the batch still runs at the end. Also measured idle first.
  kill       two servers on one database; the clients alternate between them; halfway through the
             submissions one long job goes through each. When both long jobs run (one per server:
             today's executors run one execution at a time) and tiny jobs are still queued, B gets
             kill -9, nothing restarts, and every accepted job must still succeed exactly once.

With --broker the queue runs on Celery, as issue 14 distributes it: the script also starts a
redis-server and two `nogil-bench worker` processes, each with a data directory of its own
(FILE_STORE=database: nothing shared but the database and the broker), and the service
dispatches to them. The kill phase then runs one service and kills worker B instead: one long
job runs on each worker at the kill, and B's must come back through its lease.

Each phase also reports the CPU it took: this script (plus wrk) and, where it started them, the
servers (and workers). Without --url the script starts `nogil-bench serve` on a free port with
a temporary data directory and Argon2 at its least cost (and two more for the kill phase, one with
--broker), and stops them at the end; --url skips the kill phase. The exit status is 1 when a
target fails or could not be measured.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from live_server import OwnProcess, ServerProcess, Worker, redis_server, running_server

PHASES = ("submit", "reads", "saturated", "kill")
TINY_JOB = {
    "source": {"width": 8, "height": 8},
    "pipeline": [{"op": "invert"}],
    "runner": "sequential",
}
TINY_JOB_BODY = json.dumps(TINY_JOB).encode()
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)  # ConnectionError, TimeoutError: OSError

# Issue 12's targets.
SUBMIT_RATE_TARGET = 200.0
COMPLETION_RATE_TARGET = 20.0
AUTH_READ_SHARE_TARGET = 0.5
SATURATED_P99_TARGET_MS = 25.0
SATURATED_CORE_SHARE = 0.75  # of every core, used by the server while the batch runs

CALL_ATTEMPTS = 5  # set-up and polling calls (not measured) retry transport errors and 5xx
CALL_BACKOFF_S = 0.2
SETUP_THREADS = 8
POLL_THREADS = 4
POLL_INTERVAL_S = 1.0
PAGE_LIMIT = 100
BARRIER_TIMEOUT_S = 120.0
READ_SETTLE_S = 1.0  # between read runs: the previous run's backlog drains
IDLE_REFERENCE_S = 3.0
BATCH_POLL_S = 0.1
MARKER = "LOAD_API "
PROGRESS_EVERY_S = 5.0
# wrk's default: an answer later than this is a timeout error (wrk cannot see requests still
# unanswered at the end; the Python client abandons them and counts a socket error).
READ_TIMEOUT_S = 2.0
STARTED = time.monotonic()
LOAD_AVERAGE_AT_START = os.getloadavg()[0]
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*: .*$", re.MULTILINE)

# Counts responses outside 2xx, and prints wrk's summary as one JSON line.
WRK_SCRIPT = """
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
    "LOAD_API {\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, \\"read\\": %d, "
    .. "\\"write\\": %d, \\"timeout\\": %d, \\"non2xx\\": %d, \\"p50_us\\": %d, "
    .. "\\"p99_us\\": %d, \\"max_us\\": %d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, outside,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running service (default: start one; no kill phase)")
    parser.add_argument("--database-url", help="NOGIL_BENCH_DATABASE_URL for started servers")
    parser.add_argument("--phases", default=",".join(PHASES), help="default: %(default)s")
    parser.add_argument(
        "--broker",
        action="store_true",
        help="the queue on Celery: a redis-server and two `nogil-bench worker`s this script starts",
    )
    parser.add_argument(
        "--broker-url",
        help="with --broker: this broker (e.g. a RabbitMQ, amqp://...) instead of a redis-server "
        "of the script's; it must be empty, and is not stopped",
    )
    parser.add_argument("--clients", type=int, default=50, help="default: %(default)s")
    parser.add_argument("--jobs-per-client", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--one-user", action="store_true", help="every client logs in as one user")
    parser.add_argument(
        "--idempotency", action="store_true", help="an Idempotency-Key (a new UUID) per submission"
    )
    parser.add_argument(
        "--timeout", type=float, default=180, help="per wait: submissions, completion, batch start"
    )
    parser.add_argument("--request-timeout", type=float, default=30, help="per request, seconds")
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per read run and saturated window"
    )
    parser.add_argument("--connections", type=int, default=50, help="reads (default: 50)")
    parser.add_argument(
        "--read-tool", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if found"
    )
    parser.add_argument("--read-rate", type=float, default=10, help="saturated: GETs per second")
    parser.add_argument("--batch-count", type=int, default=192, help="saturated: images")
    parser.add_argument("--batch-size", type=int, default=384, help="saturated: width = height")
    parser.add_argument("--batch-workers", type=int, help="saturated (default: the server's CPUs)")
    parser.add_argument(
        "--kill-job-size", type=int, default=2048, help="kill: the long jobs' side (default: 2048)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; choose from {','.join(PHASES)}")
    if min(args.clients, args.jobs_per_client, args.duration, args.connections) < 1:
        parser.error("--clients, --jobs-per-client, --duration and --connections must be >= 1")
    if args.read_tool == "wrk" and shutil.which("wrk") is None:
        parser.error("--read-tool wrk: wrk is not on PATH")
    if args.broker and args.url is not None:
        parser.error("--broker starts its own service, workers and broker: not with --url")
    if args.broker_url is not None and not args.broker:
        parser.error("--broker-url: only with --broker")
    if args.broker and args.broker_url is None and shutil.which("redis-server") is None:
        parser.error("--broker needs redis-server: apt-get install redis-server")
    return args


def without_password(url: str) -> str:
    """`url` as --json writes it: its password, if any, masked."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats' surprises
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class LatencyMs:
    count: int
    p50: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, latencies_s: Sequence[float]) -> LatencyMs:
        in_ms = [latency * 1000 for latency in latencies_s]
        return cls(
            len(in_ms), percentile(in_ms, 50), percentile(in_ms, 99), max(in_ms, default=None)
        )

    def __str__(self) -> str:
        return f"p50 {ms(self.p50)}, p99 {ms(self.p99)}, max {ms(self.max)}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def rate(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def per_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    latency_s: float
    retry_after: str | None

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection, as one client holds it."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise SystemExit(f"{base_url}: only http://host:port URLs")
        self.prefix = parts.path.rstrip("/")
        self._http = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)

    def open(self) -> None:
        self._http.connect()

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One timed request; a transport failure raises, and the next request reconnects."""
        start = time.perf_counter()
        try:
            self._http.request(method, self.prefix + path, body=body, headers=dict(headers or {}))
            response = self._http.getresponse()
            data = response.read()
        except TRANSPORT_ERRORS:
            self._http.close()
            raise
        latency_s = time.perf_counter() - start
        return Reply(response.status, data, latency_s, response.getheader("Retry-After"))

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An unmeasured request (set-up, polling): transport errors and 5xx are retried a few
        times; the last failure raises, or its 5xx is returned."""
        for attempt in range(CALL_ATTEMPTS):
            last = attempt == CALL_ATTEMPTS - 1
            try:
                reply = self.send(method, path, body=body, headers=headers)
            except TRANSPORT_ERRORS:
                if last:
                    raise
            else:
                if reply.status < 500 or last:
                    return reply
            time.sleep(CALL_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")


def json_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


class Pool:
    """A few threads, each with its own connection, for unmeasured calls in parallel."""

    def __init__(self, base_url: str, timeout_s: float, threads: int) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads)

    def connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = Connection(self.base_url, self.timeout_s)
            with self._lock:
                self._connections.append(connection)
        return connection

    def map[T, R](self, work: Callable[[Connection, T], R], items: Sequence[T]) -> list[R]:
        return list(self._executor.map(lambda item: work(self.connection(), item), items))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._executor.shutdown()
        for connection in self._connections:
            connection.close()


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_account(connection: Connection, label: str) -> Account:
    """Register and log in (retried: set-up is not what is measured)."""
    email, password = f"load-{label}-{uuid.uuid4().hex[:12]}@example.com", uuid.uuid4().hex
    body = json.dumps({"email": email, "password": password}).encode()
    reply = connection.call("POST", "/api/v1/auth/register", body=body, headers=json_headers({}))
    # 409: an earlier attempt was stored although it answered 5xx.
    if reply.status not in {201, 409}:
        raise SystemExit(f"register {email}: {reply.status} {reply.body[:300]!r}")
    form = urllib.parse.urlencode({"username": email, "password": password}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = connection.call("POST", "/api/v1/auth/token", body=form, headers=headers)
    if reply.status != 200:
        raise SystemExit(f"log in {email}: {reply.status} {reply.body[:300]!r}")
    return Account(email, reply.json()["access_token"])


def create_accounts(base_url: str, count: int, label: str, timeout_s: float) -> list[Account]:
    with Pool(base_url, timeout_s, SETUP_THREADS) as calls:
        return calls.map(
            lambda connection, i: create_account(connection, f"{label}{i}"), range(count)
        )


# ---------------------------------------------------------------------------- CPU


@dataclass(frozen=True)
class CpuUse:
    wall_s: float
    load_cpu_s: float  # this script's threads, plus wrk
    load_cores: float
    server_cpu_s: float | None
    server_cores: float | None

    @classmethod
    def of(cls, wall_s: float, load_cpu_s: float, server_cpu_s: float | None) -> CpuUse:
        server_cores = None if server_cpu_s is None else server_cpu_s / wall_s
        return cls(wall_s, load_cpu_s, load_cpu_s / wall_s, server_cpu_s, server_cores)

    def __str__(self) -> str:
        server = "" if self.server_cores is None else f", server {self.server_cores:.2f}"
        return (
            f"CPU (cores): load generator {self.load_cores:.2f}{server}, over {self.wall_s:.1f} s"
        )


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used from now to `stop()`, by this process and by the servers (and workers) given."""

    def __init__(self, servers: Sequence[OwnProcess]) -> None:
        self.servers = servers
        self.started = time.perf_counter()
        self.own_start = own_cpu_s()
        self.server_start = sum(server.cpu_s() for server in servers)

    def stop(self, extra_load_cpu_s: float = 0.0) -> CpuUse:
        server_cpu_s = sum(server.cpu_s() for server in self.servers) - self.server_start
        return CpuUse.of(
            wall_s=time.perf_counter() - self.started,
            load_cpu_s=own_cpu_s() - self.own_start + extra_load_cpu_s,
            server_cpu_s=server_cpu_s if self.servers else None,
        )


# ---------------------------------------------------------------------------- submissions


@dataclass(frozen=True)
class Submission:
    email: str  # the account that submitted
    status: int | None  # None: the request failed at the transport level
    latency_s: float
    job_id: str | None
    transport_error: str | None
    retry_after: bool


@dataclass
class SubmitResult:
    clients: int
    jobs_per_client: int
    one_user: bool
    idempotency: bool
    sent: int
    accepted: int
    statuses: dict[str, int]
    server_errors: int
    server_errors_with_retry_after: int
    transport_errors: dict[str, int]
    latency: LatencyMs
    wall_s: float
    rate_per_s: float | None
    cpu: CpuUse

    def lines(self) -> list[str]:
        expected = self.clients * self.jobs_per_client
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items())) or "-"
        transport = ", ".join(f"{kind}: {n}" for kind, n in self.transport_errors.items())
        users = "one user" if self.one_user else "one user each"
        return [
            f"{self.clients} clients ({users}) x {self.jobs_per_client} jobs"
            f"{', Idempotency-Key' if self.idempotency else ''}: {self.sent} sent"
            + ("" if self.sent == expected else " (the rest not sent: --timeout)"),
            f"status codes: {statuses}",
            f"5xx: {self.server_errors} ({self.server_errors_with_retry_after} with Retry-After)",
            f"transport errors: {sum(self.transport_errors.values())}"
            + (f" ({transport})" if transport else ""),
            f"latency: {self.latency}",
            f"accepted: {self.accepted} in {self.wall_s:.2f} s = {per_s(self.rate_per_s)}",
            str(self.cpu),
        ]


def submit_job(
    connection: Connection, account: Account, body: bytes, *, idempotency: bool
) -> Submission:
    """One POST /api/v1/jobs, timed, never retried."""
    headers = json_headers(account.headers)
    if idempotency:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    start = time.perf_counter()
    try:
        reply = connection.send("POST", "/api/v1/jobs", body=body, headers=headers)
    except TRANSPORT_ERRORS as error:
        latency_s = time.perf_counter() - start
        return Submission(account.email, None, latency_s, None, type(error).__name__, False)
    return Submission(
        account.email,
        reply.status,
        reply.latency_s,
        accepted_id(reply),
        None,
        reply.retry_after is not None,
    )


def submit_jobs(
    targets: Sequence[tuple[str, Account]],
    *,
    jobs_per_client: int,
    idempotency: bool,
    request_timeout_s: float,
    phase_timeout_s: float,
    halfway: Callable[[], None] | None = None,
) -> tuple[list[Submission], float]:
    """Each target (base URL, account) is one client; all start at once, and `halfway` runs
    once half the submissions are sent. Returns every submission and the phase's wall time."""
    barrier = threading.Barrier(len(targets) + 1)
    submissions: list[list[Submission]] = [[] for _ in targets]

    def client(index: int) -> None:
        base_url, account = targets[index]
        connection = Connection(base_url, request_timeout_s)
        # Connected before the start: connecting is not part of a submission. If it fails, the
        # first submission reconnects (and counts the failure).
        with contextlib.suppress(*TRANSPORT_ERRORS):
            connection.open()
        barrier.wait(BARRIER_TIMEOUT_S)
        stop_at = time.monotonic() + phase_timeout_s
        for _ in range(jobs_per_client):
            if time.monotonic() > stop_at:
                break
            submitted = submit_job(connection, account, TINY_JOB_BODY, idempotency=idempotency)
            submissions[index].append(submitted)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    barrier.wait(BARRIER_TIMEOUT_S)
    started = time.perf_counter()
    total = len(targets) * jobs_per_client
    while any(thread.is_alive() for thread in threads):
        if halfway is not None and sum(map(len, submissions)) * 2 >= total:
            halfway()
            halfway = None
        time.sleep(0.02)
    wall_s = time.perf_counter() - started
    return [submission for client in submissions for submission in client], wall_s


def accepted_id(reply: Reply) -> str | None:
    if reply.status != 202:
        return None
    try:
        job_id = reply.json()["id"]
    except ValueError, KeyError, TypeError:
        return None
    return str(job_id)


def summarize_submissions(
    submissions: Sequence[Submission], wall_s: float, cpu: CpuUse, args: argparse.Namespace
) -> SubmitResult:
    replies = [s for s in submissions if s.status is not None]
    server_errors = [s for s in replies if s.status is not None and s.status >= 500]
    accepted = sum(s.status == 202 for s in replies)
    return SubmitResult(
        clients=args.clients,
        jobs_per_client=args.jobs_per_client,
        one_user=args.one_user,
        idempotency=args.idempotency,
        sent=len(submissions),
        accepted=accepted,
        statuses={str(code): n for code, n in Counter(s.status for s in replies).items()},
        server_errors=len(server_errors),
        server_errors_with_retry_after=sum(s.retry_after for s in server_errors),
        transport_errors=dict(Counter(s.transport_error for s in submissions if s.transport_error)),
        latency=LatencyMs.of([s.latency_s for s in replies]),
        wall_s=wall_s,
        rate_per_s=rate(accepted, wall_s),
        cpu=cpu,
    )


# ---------------------------------------------------------------------------- completion


@dataclass
class CompletionResult:
    accepted: int
    stored: int
    succeeded: int  # of the accepted
    lost: int
    lost_by_status: dict[str, int]
    phantom: int
    doubled: int
    doubled_users: int
    rerun: int  # attempts > 1
    failed_errors: dict[str, int]
    timed_out: bool
    wait_s: float
    completion_window_s: float | None
    completion_rate_per_s: float | None
    run_latency: LatencyMs  # started_at to finished_at, server side
    cancelled_leftovers: int
    cpu: CpuUse

    def lines(self) -> list[str]:
        lost_detail = ", ".join(f"{status}: {n}" for status, n in self.lost_by_status.items())
        lines = [
            f"accepted {self.accepted}, stored {self.stored}, accepted and succeeded "
            f"{self.succeeded}"
            + (f" (timed out after {self.wait_s:.0f} s)" if self.timed_out else ""),
            f"lost: {self.lost}" + (f" ({lost_detail})" if lost_detail else ""),
            f"phantom (stored, submission not answered 202): {self.phantom}",
            f"doubled (jobs stored beyond a user's 202s): {self.doubled}, "
            f"in {self.doubled_users} users",
            f"run more than once (attempts > 1): {self.rerun}",
            f"completion: {per_s(self.completion_rate_per_s)} (succeeded jobs, first queued_at to "
            f"last finished_at: {fmt_s(self.completion_window_s)}); one run {self.run_latency}",
        ]
        lines += [f"failed: {n} x {error}" for error, n in self.failed_errors.items()]
        if self.cancelled_leftovers:
            lines.append(f"cancelled {self.cancelled_leftovers} leftover queued jobs")
        lines.append(str(self.cpu))
        return lines


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def list_jobs(connection: Connection, account: Account) -> list[Any]:
    """Every job the user has (all pages); raises RuntimeError when the service fails to list."""
    jobs: list[Any] = []
    while True:
        path = f"/api/v1/jobs?limit={PAGE_LIMIT}&offset={len(jobs)}"
        reply = connection.call("GET", path, headers=account.headers)
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: {reply.status}")
        page = reply.json()
        jobs += page["data"]
        if len(page["data"]) < PAGE_LIMIT or len(jobs) >= page["count"]:
            return jobs


def try_list_jobs(connection: Connection, account: Account) -> list[Any] | None:
    try:
        return list_jobs(connection, account)
    except (RuntimeError, *TRANSPORT_ERRORS):
        return None


def accepted_by_user(
    accounts: Sequence[Account], submissions: Sequence[Submission]
) -> dict[str, tuple[int, set[str]]]:
    """Per user (email): the 202s received and the ids they carried."""
    ledger: dict[str, tuple[int, set[str]]] = {account.email: (0, set()) for account in accounts}
    for submission in submissions:
        if submission.status == 202:
            count, ids = ledger[submission.email]
            if submission.job_id is not None:
                ids.add(submission.job_id)
            ledger[submission.email] = (count + 1, ids)
    return ledger


def wait_for_jobs(
    calls: Pool,
    accounts: Sequence[Account],
    accepted: Mapping[str, tuple[int, set[str]]],
    timeout_s: float,
    label: str,
    stop_when: Callable[[dict[str, dict[str, Any]]], bool] | None = None,
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Polls each user's jobs until every accepted one is finished (or absent: a 202 whose job
    was never stored is lost, not pending), or `stop_when(all jobs by id)` says so, or the
    timeout. Returns the last listing of every job by id, and whether it timed out."""
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict[str, Any]] = {}
    pending = [account for account in accounts if accepted[account.email][1]]
    total = sum(len(ids) for _, ids in accepted.values())
    next_report = time.monotonic() + PROGRESS_EVERY_S
    while True:
        listings = calls.map(try_list_jobs, pending)
        still_pending = []
        for account, listing in zip(pending, listings, strict=True):
            if listing is None:
                still_pending.append(account)
                continue
            jobs.update({job["id"]: job for job in listing})
            if any(
                job["status"] not in FINISHED
                for job in listing
                if job["id"] in accepted[account.email][1]
            ):
                still_pending.append(account)
        pending = still_pending
        finished = sum(
            1
            for _, ids in accepted.values()
            for job_id in ids
            if job_id in jobs and jobs[job_id]["status"] in FINISHED
        )
        if not pending or (stop_when is not None and stop_when(jobs)):
            progress(f"{label}: {finished}/{total} accepted jobs finished")
            return jobs, False
        if time.monotonic() > deadline:
            progress(f"{label}: {finished}/{total} accepted jobs finished (timed out)")
            return jobs, True
        if time.monotonic() >= next_report:
            progress(f"{label}: {finished}/{total} accepted jobs finished")
            next_report += PROGRESS_EVERY_S
        time.sleep(POLL_INTERVAL_S)


def final_listing(calls: Pool, accounts: Sequence[Account]) -> dict[str, list[Any] | None]:
    listings = calls.map(try_list_jobs, accounts)
    return {account.email: listing for account, listing in zip(accounts, listings, strict=True)}


def cancel_queued(calls: Pool, accounts_jobs: Sequence[tuple[Account, str]]) -> int:
    """DELETE of queued jobs left by a timed-out wait, so later phases start on an idle queue."""

    def cancel(connection: Connection, item: tuple[Account, str]) -> bool:
        account, job_id = item
        try:
            reply = connection.call("DELETE", f"/api/v1/jobs/{job_id}", headers=account.headers)
        except TRANSPORT_ERRORS:
            return False
        return reply.status in {200, 202, 204}

    return sum(calls.map(cancel, accounts_jobs))


def check_completion(
    calls: Pool,
    accounts: Sequence[Account],
    submissions: Sequence[Submission],
    timeout_s: float,
    label: str,
    cpu_meter: CpuMeter,
) -> CompletionResult:
    accepted = accepted_by_user(accounts, submissions)
    started = time.perf_counter()
    _, timed_out = wait_for_jobs(calls, accounts, accepted, timeout_s, label)
    wait_s = time.perf_counter() - started
    listings = final_listing(calls, accounts)
    result = compare(accepted, listings, accounts)
    leftovers = [
        (account, job["id"])
        for account in accounts
        for job in listings[account.email] or []
        if job["status"] == "queued"
    ]
    cancelled = cancel_queued(calls, leftovers) if timed_out and leftovers else 0
    return CompletionResult(
        **result,
        timed_out=timed_out,
        wait_s=wait_s,
        cancelled_leftovers=cancelled,
        cpu=cpu_meter.stop(),
    )


def compare(
    accepted: Mapping[str, tuple[int, set[str]]],
    listings: Mapping[str, list[Any] | None],
    accounts: Sequence[Account],
) -> dict[str, Any]:
    """Accepted ids against what each user has stored: lost, phantom, doubled, and the rates."""
    lost_by_status: Counter[str] = Counter()
    stored = phantom = doubled = doubled_users = succeeded = 0
    all_jobs: list[Any] = []
    for account in accounts:
        accepted_count, accepted_ids = accepted[account.email]
        listing = listings[account.email]
        if listing is None:
            lost_by_status["unlisted (GET /jobs failed)"] += accepted_count
            continue
        by_id = {job["id"]: job for job in listing}
        all_jobs += listing
        stored += len(listing)
        phantom += len(by_id.keys() - accepted_ids)
        excess = len(listing) - accepted_count
        doubled += max(0, excess)
        doubled_users += excess > 0
        for job_id in accepted_ids:
            status = by_id[job_id]["status"] if job_id in by_id else "missing"
            if status == "succeeded":
                succeeded += 1
            else:
                lost_by_status[status] += 1
        lost_by_status["202 without an id"] += accepted_count - len(accepted_ids)
    done = [job for job in all_jobs if job["status"] == "succeeded"]
    window_s = None
    if done:
        first = min(parse_time(job["queued_at"]) for job in all_jobs)
        last = max(parse_time(job["finished_at"]) for job in done)
        window_s = (last - first).total_seconds()
    runs_s = [
        (parse_time(job["finished_at"]) - parse_time(job["started_at"])).total_seconds()
        for job in done
        if job["started_at"]
    ]
    failed = Counter(one_line(str(job["error"])) for job in all_jobs if job["status"] == "failed")
    return {
        "accepted": sum(count for count, _ in accepted.values()),
        "stored": stored,
        "succeeded": succeeded,
        "lost": sum(lost_by_status.values()),
        "lost_by_status": {status: n for status, n in lost_by_status.items() if n},
        "phantom": phantom,
        "doubled": doubled,
        "doubled_users": doubled_users,
        "rerun": sum(job["attempts"] > 1 for job in all_jobs),
        "failed_errors": dict(failed.most_common(3)),
        "completion_window_s": window_s,
        "completion_rate_per_s": rate(len(done), window_s),
        "run_latency": LatencyMs.of(runs_s),
    }


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------------------- reads


@dataclass
class ReadResult:
    route: str
    tool: str
    connections: int
    duration_s: float
    requests: int
    rate_per_s: float
    non_2xx: int
    socket_errors: int
    latency: LatencyMs
    share_of_live: float | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def line(self) -> str:
        share = "" if self.share_of_live is None else f", {self.share_of_live:.0%} of /health/live"
        if self.requests == 0:
            share += f" (no response in {self.duration_s:.0f} s)"
        return (
            f"{self.route}: {self.rate_per_s:.0f} req/s "
            f"({self.requests} in {self.duration_s:.1f} s), "
            f"errors {self.errors} (non-2xx {self.non_2xx}, socket {self.socket_errors}), "
            f"latency p50 {ms(self.latency.p50)}, p99 {ms(self.latency.p99)}{share}"
        )


@dataclass
class ReadsResult:
    tool: str
    routes: list[ReadResult]
    cpu: CpuUse

    def lines(self) -> list[str]:
        return [f"tool: {self.tool}", *(route.line() for route in self.routes), str(self.cpu)]


def run_wrk(
    base_url: str, route: str, headers: Mapping[str, str], args: argparse.Namespace
) -> tuple[ReadResult, float]:
    """One wrk run; returns its result and the CPU seconds wrk used."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = [
            "wrk",
            f"-t{min(args.connections, os.cpu_count() or 1)}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            f"--timeout={READ_TIMEOUT_S:.0f}s",
            "-s",
            script.name,
        ]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        finished = subprocess.run(  # noqa: S603 - wrk, our arguments
            [*command, base_url + route],
            capture_output=True,
            text=True,
            timeout=args.duration + args.request_timeout + 30,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    summary_lines = [line for line in finished.stdout.splitlines() if line.startswith(MARKER)]
    if finished.returncode != 0 or not summary_lines:
        raise SystemExit(
            f"wrk failed ({finished.returncode}): {finished.stderr or finished.stdout}"
        )
    summary = json.loads(summary_lines[-1].removeprefix(MARKER))
    duration_s = summary["duration_us"] / 1e6
    result = ReadResult(
        route=route,
        tool="wrk",
        connections=args.connections,
        duration_s=duration_s,
        requests=summary["requests"],
        rate_per_s=summary["requests"] / duration_s,
        non_2xx=summary["non2xx"],
        socket_errors=sum(summary[kind] for kind in ("connect", "read", "write", "timeout")),
        latency=LatencyMs(
            summary["requests"],
            summary["p50_us"] / 1000,
            summary["p99_us"] / 1000,
            summary["max_us"] / 1000,
        )
        if summary["requests"]
        else LatencyMs.of([]),
    )
    return result, wrk_cpu_s


def run_python_reads(
    base_url: str, route: str, headers: Mapping[str, str], args: argparse.Namespace
) -> ReadResult:
    """wrk's job with threads: one keep-alive connection each, as many requests as they get
    answered in the duration."""
    barrier = threading.Barrier(args.connections + 1)
    outcomes: list[list[tuple[int | None, float]]] = [[] for _ in range(args.connections)]
    stop_at = 0.0

    def client(index: int) -> None:
        connection = Connection(base_url, READ_TIMEOUT_S)
        barrier.wait(BARRIER_TIMEOUT_S)
        while time.monotonic() < stop_at:
            try:
                reply = connection.send("GET", route, headers=headers)
            except TRANSPORT_ERRORS:
                outcomes[index].append((None, 0.0))
                continue
            outcomes[index].append((reply.status, reply.latency_s))
        connection.close()

    threads = [
        threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    stop_at = time.monotonic() + args.duration
    barrier.wait(BARRIER_TIMEOUT_S)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    duration_s = time.perf_counter() - started
    answered = [(status, latency) for client in outcomes for status, latency in client if status]
    return ReadResult(
        route=route,
        tool="python",
        connections=args.connections,
        duration_s=duration_s,
        requests=len(answered),
        rate_per_s=len(answered) / duration_s,
        non_2xx=sum(not 200 <= status < 300 for status, _ in answered),
        socket_errors=sum(status is None for client in outcomes for status, _ in client),
        latency=LatencyMs.of([latency for _, latency in answered]),
    )


def wait_until_live(base_url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    connection = Connection(base_url, timeout_s)
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                if connection.send("GET", "/health/live").status == 200:
                    return True
            time.sleep(0.2)
        return False
    finally:
        connection.close()


def settle(base_url: str, account: Account, timeout_s: float) -> None:
    """Waits until an authenticated read answers (the previous run's backlog is served), then
    a moment more."""
    connection = Connection(base_url, timeout_s)
    with contextlib.suppress(*TRANSPORT_ERRORS):
        connection.send("GET", "/api/v1/users/me", headers=account.headers)
    connection.close()
    time.sleep(READ_SETTLE_S)


def measure_reads(
    base_url: str, account: Account, args: argparse.Namespace, processes: Sequence[OwnProcess]
) -> ReadsResult:
    use_wrk = args.read_tool == "wrk" or (args.read_tool == "auto" and shutil.which("wrk"))
    tool = "wrk" if use_wrk else "python (threads, http.client keep-alive)"
    routes = [
        ("/health/live", {}),
        ("/api/v1/users/me", account.headers),
        ("/api/v1/jobs", account.headers),
    ]
    meter = CpuMeter(processes)
    wrk_cpu_s = 0.0
    results = []
    for route, headers in routes:
        settle(base_url, account, args.request_timeout)
        progress(f"reads: {route} for {args.duration} s ({tool})")
        if use_wrk:
            result, cpu_s = run_wrk(base_url, route, headers, args)
            wrk_cpu_s += cpu_s
        else:
            result = run_python_reads(base_url, route, headers, args)
        results.append(result)
    live = results[0].rate_per_s
    for result in results[1:]:
        result.share_of_live = result.rate_per_s / live if live else None
    return ReadsResult(tool, results, meter.stop(wrk_cpu_s))


# ---------------------------------------------------------------------------- saturated


@dataclass
class SteadyReads:
    jobs: LatencyMs
    jobs_errors: int
    live: LatencyMs
    live_errors: int


@dataclass
class SaturatedResult:
    batch: dict[str, Any]
    cpu_count: int
    idle: SteadyReads
    valid: bool
    reason: str
    batch_id: str | None = None
    start_wait_s: float | None = None
    loaded: SteadyReads | None = None
    batch_status_at_end: str | None = None
    images_done: tuple[int, int] | None = None  # at the window's start and end
    cpu: CpuUse | None = None

    @property
    def saturated(self) -> bool | None:
        """Whether the server used most of every core in the window (None: not measured)."""
        if self.cpu is None or self.cpu.server_cores is None:
            return None
        return self.cpu.server_cores >= SATURATED_CORE_SHARE * self.cpu_count

    def lines(self) -> list[str]:
        source = self.batch["source"]
        lines = [
            f"batch: {source['count']} x {source['width']}x{source['height']} "
            f"{self.batch['pipeline'][0]['op']}, {self.batch['runner']} runner, "
            f"{self.batch['workers']} workers",
            f"idle:  GET /api/v1/jobs {self.idle.jobs}; /health/live {self.idle.live}",
        ]
        if self.loaded is not None:
            lines.append(
                f"under the batch: GET /api/v1/jobs {self.loaded.jobs} ({self.loaded.jobs_errors} "
                f"errors); /health/live {self.loaded.live} ({self.loaded.live_errors} errors)"
            )
        if self.images_done is not None:
            lines.append(
                f"batch running {fmt_s(self.start_wait_s)} after submission; images done "
                f"{self.images_done[0]} -> {self.images_done[1]} during the window; "
                f"status at the end: {self.batch_status_at_end}"
            )
        lines.append(f"window {'valid' if self.valid else 'INVALID'}: {self.reason}")
        if self.cpu is not None:
            lines.append(str(self.cpu))
        if self.saturated is False:
            lines.append(
                f"not saturated: the server used under {SATURATED_CORE_SHARE:.0%} of "
                f"{self.cpu_count} cores (other work on the host?): a pass would not count"
            )
        return lines


def steady_reads(
    base_url: str, account: Account, rate_per_s: float, duration_s: float, timeout_s: float
) -> SteadyReads:
    """GET /api/v1/jobs then GET /health/live, one client each, at a fixed rate."""
    jobs, live = Connection(base_url, timeout_s), Connection(base_url, timeout_s)
    samples: dict[str, list[float]] = {"jobs": [], "live": []}
    errors: Counter[str] = Counter()
    count = max(1, round(rate_per_s * duration_s))
    started = time.monotonic()
    for i in range(count):
        if time.monotonic() - started > duration_s:
            break  # slow answers: fewer samples, the same window
        time.sleep(max(0.0, started + i / rate_per_s - time.monotonic()))
        for name, connection, path, headers in (
            ("jobs", jobs, "/api/v1/jobs", account.headers),
            ("live", live, "/health/live", {}),
        ):
            try:
                reply = connection.send("GET", path, headers=headers)
            except TRANSPORT_ERRORS:
                errors[name] += 1
                continue
            samples[name].append(reply.latency_s)
            errors[name] += reply.status != 200
    jobs.close()
    live.close()
    return SteadyReads(
        LatencyMs.of(samples["jobs"]), errors["jobs"], LatencyMs.of(samples["live"]), errors["live"]
    )


def batch_state(connection: Connection, account: Account, batch_id: str) -> dict[str, Any] | None:
    try:
        reply = connection.call("GET", f"/api/v1/batches/{batch_id}", headers=account.headers)
    except TRANSPORT_ERRORS:
        return None
    return reply.json() if reply.status == 200 else None


def measure_saturated(
    base_url: str, args: argparse.Namespace, cpu_count: int, processes: Sequence[OwnProcess]
) -> SaturatedResult:
    [account] = create_accounts(base_url, 1, "batch", args.request_timeout)
    batch = {
        "source": {"count": args.batch_count, "width": args.batch_size, "height": args.batch_size},
        "pipeline": [{"op": "box_blur"}],
        "runner": "threads",
        "workers": args.batch_workers or cpu_count,
    }
    progress("saturated: idle reference")
    idle = steady_reads(base_url, account, args.read_rate, IDLE_REFERENCE_S, args.request_timeout)
    connection = Connection(base_url, args.request_timeout)
    submitted = time.monotonic()
    try:  # once: a retried 5xx could store a second batch
        reply = connection.send(
            "POST",
            "/api/v1/batches",
            body=json.dumps(batch).encode(),
            headers=json_headers(account.headers),
        )
    except TRANSPORT_ERRORS as error:
        reason = f"the batch submission failed: {type(error).__name__}"
        return SaturatedResult(batch, cpu_count, idle, valid=False, reason=reason)
    if reply.status != 202:
        reason = f"the batch was refused: {reply.status} {reply.body[:200]!r}"
        return SaturatedResult(batch, cpu_count, idle, valid=False, reason=reason)
    batch_id = str(reply.json()["id"])
    deadline = submitted + args.timeout
    state = batch_state(connection, account, batch_id)
    while state is None or state["status"] != "running" or state["progress"]["running"] == 0:
        if (state is not None and state["status"] in FINISHED) or time.monotonic() > deadline:
            status = state["status"] if state else "unknown"
            reason = f"the batch never ran while measured (status {status})"
            return SaturatedResult(
                batch,
                cpu_count,
                idle,
                valid=False,
                reason=reason,
                batch_id=batch_id,
                batch_status_at_end=status,
            )
        time.sleep(BATCH_POLL_S)
        state = batch_state(connection, account, batch_id)
    start_wait_s = time.monotonic() - submitted
    done_before = state["progress"]["done"]
    progress(f"saturated: batch running, reads for {args.duration} s")
    meter = CpuMeter(processes)
    loaded = steady_reads(base_url, account, args.read_rate, args.duration, args.request_timeout)
    cpu = meter.stop()
    after = batch_state(connection, account, batch_id)
    connection.close()
    status_at_end = after["status"] if after else None
    done_after = after["progress"]["done"] if after else done_before
    valid = status_at_end == "running" and done_after < args.batch_count
    reason = (
        "the batch was still computing images at the end of the window"
        if valid
        else f"the batch was {status_at_end} with {done_after} of {args.batch_count} images done "
        "at the end of the window: use more or larger images (--batch-count, --batch-size)"
    )
    return SaturatedResult(
        batch,
        cpu_count,
        idle,
        valid=valid,
        reason=reason,
        batch_id=batch_id,
        start_wait_s=start_wait_s,
        loaded=loaded,
        batch_status_at_end=status_at_end,
        images_done=(done_before, done_after),
        cpu=cpu,
    )


# ---------------------------------------------------------------------------- two processes


@dataclass
class KillResult:
    submit: SubmitResult
    long_job: dict[str, Any]
    long_submissions: dict[str, str]  # server: its answer
    completion: CompletionResult
    kill_at_s: float  # after the submissions ended
    states_at_kill: dict[str, int]  # the tiny jobs
    long_states_at_kill: list[str]
    survivor_live: bool
    valid: bool
    reason: str
    server_log: dict[str, int]
    victim: str = "server B"  # what was killed: a server, or with --broker a worker

    @property
    def held(self) -> bool:
        return self.completion.lost == 0 and self.completion.doubled == 0

    def lines(self) -> list[str]:
        states = ", ".join(f"{status}: {n}" for status, n in sorted(self.states_at_kill.items()))
        source = self.long_job["source"]
        answers = ", ".join(
            f"{server}: {answer}" for server, answer in self.long_submissions.items()
        )
        by_worker = self.victim.startswith("worker")
        return [
            "submissions (to the one server; workers A and B run them)"
            if by_worker
            else "submissions (clients alternate between A and B):",
            *(f"  {line}" for line in self.submit.lines()),
            f"long jobs ({source['width']}x{source['height']} "
            f"{self.long_job['pipeline'][0]['op']}), two halfway through the submissions"
            f"{'' if by_worker else ', one through each server'}: {answers}",
            f"kill -9 of {self.victim} {self.kill_at_s:.1f} s after the submissions; then tiny "
            f"jobs {states or '-'}; long jobs {', '.join(self.long_states_at_kill) or '-'}",
            f"server A answers /health/live at the end: {self.survivor_live}",
            "completion (read through A):",
            *(f"  {line}" for line in self.completion.lines()),
            f"{'valid' if self.valid else 'INVALID'}: {self.reason}",
            *(f"log: {n} x {key}" for key, n in self.server_log.items()),
        ]


def statuses_of(jobs: Mapping[str, Mapping[str, Any]], ids: Iterable[str]) -> Counter[str]:
    return Counter(jobs[job_id]["status"] if job_id in jobs else "unlisted" for job_id in ids)


def measure_kill(args: argparse.Namespace) -> KillResult:
    """Two processes that run work, on one database: two servers, or with --broker one server
    and two workers. B is killed while each runs one long job, which one-execution-at-a-time
    executors and workers claim one each: B's is cut short."""
    long_job = {
        "source": {"width": args.kill_job_size, "height": args.kill_job_size},
        "pipeline": [{"op": "box_blur"}],
        "runner": "sequential",
    }
    with (
        tempfile.TemporaryDirectory(prefix="nogil-bench-load-kill-") as tmp,
        running_queue(
            args,
            Path(tmp),
            servers=["a"] if args.broker else ["a", "b"],
            secret_key=secrets.token_urlsafe(32),  # servers that accept the same tokens
        ) as (servers, workers),
    ):
        survivor, victim = (servers[0], workers[1]) if args.broker else servers
        users = 1 if args.one_user else args.clients
        *accounts, long_account = create_accounts(
            survivor.base_url, users + 1, "kill", args.request_timeout
        )
        targets = [
            (servers[i % len(servers)].base_url, accounts[i % users]) for i in range(args.clients)
        ]
        long_submissions: dict[str, Submission] = {}

        def submit_long_jobs() -> None:
            # Halfway: the queue holds tiny jobs before and after these two.
            for name in "AB":
                server = servers["AB".index(name) % len(servers)]
                connection = Connection(server.base_url, args.request_timeout)
                body = json.dumps(long_job).encode()
                long_submissions[name] = submit_job(
                    connection, long_account, body, idempotency=args.idempotency
                )
                connection.close()

        progress(f"kill: submissions to {len(servers)} server(s)")
        meter = CpuMeter([*servers, *workers])
        submissions, wall_s = submit_jobs(
            targets,
            jobs_per_client=args.jobs_per_client,
            idempotency=args.idempotency,
            request_timeout_s=args.request_timeout,
            phase_timeout_s=args.timeout,
            halfway=submit_long_jobs,
        )
        submit = summarize_submissions(submissions, wall_s, meter.stop(), args)
        submitted = time.monotonic()
        every_submission = submissions + list(long_submissions.values())
        all_accounts = [*accounts, long_account]
        accepted = accepted_by_user(all_accounts, every_submission)
        long_ids = accepted[long_account.email][1]
        tiny_ids = {job_id for _, ids in accepted.values() for job_id in ids} - long_ids

        def both_long_running(jobs: dict[str, dict[str, Any]]) -> bool:
            states = statuses_of(jobs, long_ids)
            return states["running"] == len(long_ids) or all(s in FINISHED for s in states)

        meter = CpuMeter([*servers, *workers])
        victim_name = "worker B" if args.broker else "server B"
        with Pool(survivor.base_url, args.request_timeout, POLL_THREADS) as calls:
            jobs, _ = wait_for_jobs(
                calls, all_accounts, accepted, args.timeout, "kill: before", both_long_running
            )
            kill_at_s = time.monotonic() - submitted
            victim.kill()
            progress(f"kill: {victim_name} (pid {victim.pid}) killed")
            completion = check_completion(
                calls, all_accounts, every_submission, args.timeout, "kill: after", meter
            )
        survivor_live = wait_until_live(survivor.base_url, 5)
        logs: Counter[str] = Counter()
        for process in [*servers, *workers]:
            logs.update(summarize_log(process.log_path))
    states = statuses_of(jobs, tiny_ids)
    long_states = [jobs[job_id]["status"] if job_id in jobs else "unlisted" for job_id in long_ids]
    both_running = len(long_ids) == 2 and long_states.count("running") == 2
    valid = both_running and states["queued"] > 0
    if valid:
        reason = (
            f"both long jobs were running (one per process) and {states['queued']} tiny jobs "
            "were queued at the kill"
        )
    elif not both_running:
        reason = (
            f"the kill did not find both long jobs running: {victim_name} may have had nothing "
            "to cut (try a larger --kill-job-size)"
        )
    else:
        reason = "no tiny job was still queued at the kill: not midway through execution"
    return KillResult(
        submit=submit,
        long_job=long_job,
        long_submissions={
            name: str(sub.status or sub.transport_error) for name, sub in long_submissions.items()
        },
        completion=completion,
        kill_at_s=kill_at_s,
        states_at_kill=dict(states),
        long_states_at_kill=long_states,
        survivor_live=survivor_live,
        valid=valid,
        reason=reason,
        server_log=dict(logs.most_common(8)),
        victim=victim_name,
    )


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    verdict: str  # PASS, FAIL, or INVALID (not measurable in this run)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


@dataclass
class Results:
    config: dict[str, Any]
    service: dict[str, Any] = field(default_factory=dict)
    submit: SubmitResult | None = None
    completion: CompletionResult | None = None
    reads: ReadsResult | None = None
    saturated: SaturatedResult | None = None
    kill: KillResult | None = None
    server_log: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def targets_of(results: Results, expected: int) -> list[Target]:
    targets = []
    if (s := results.submit) is not None and (c := results.completion) is not None:
        targets += [
            Target("no 5xx", f"{s.server_errors}", verdict(s.server_errors == 0)),
            Target(
                f"all {expected} submissions accepted and succeeded",
                f"{c.succeeded} of {expected}",
                verdict(c.succeeded == expected),
            ),
            Target("0 lost", f"{c.lost}", verdict(c.lost == 0)),
            Target("0 phantom", f"{c.phantom}", verdict(c.phantom == 0)),
            Target("0 doubled", f"{c.doubled}", verdict(c.doubled == 0)),
            Target(
                f"submission rate >= {SUBMIT_RATE_TARGET:.0f}/s",
                per_s(s.rate_per_s),
                verdict((s.rate_per_s or 0) >= SUBMIT_RATE_TARGET),
            ),
            Target(
                f"completion rate >= {COMPLETION_RATE_TARGET:.0f}/s",
                per_s(c.completion_rate_per_s),
                verdict((c.completion_rate_per_s or 0) >= COMPLETION_RATE_TARGET),
            ),
        ]
    if (r := results.reads) is not None:
        for route in r.routes[1:]:
            share = route.share_of_live or 0
            targets += [
                Target(
                    f"{route.route}: 0 errors",
                    f"{route.errors} in {route.requests} responses",
                    verdict(route.errors == 0 and route.requests > 0),
                ),
                Target(
                    f"{route.route} >= {AUTH_READ_SHARE_TARGET:.0%} of /health/live req/s",
                    f"{share:.0%} ({route.rate_per_s:.0f} vs {r.routes[0].rate_per_s:.0f})",
                    verdict(share >= AUTH_READ_SHARE_TARGET),
                ),
            ]
    if (b := results.saturated) is not None:
        p99 = b.loaded.jobs.p99 if b.loaded else None
        errors = b.loaded.jobs_errors if b.loaded else 0
        passed = p99 is not None and p99 <= SATURATED_P99_TARGET_MS and errors == 0
        # A miss on a host that gave the batch less than every core still fails; a pass there
        # proves nothing.
        measurable = b.valid and (not passed or b.saturated is not False)
        targets.append(
            Target(
                f"GET /api/v1/jobs p99 <= {SATURATED_P99_TARGET_MS:.0f} ms, batch on every core",
                f"{ms(p99)}, {errors} errors",
                verdict(passed) if measurable else "INVALID",
            )
        )
    if (k := results.kill) is not None:
        c = k.completion
        targets.append(
            Target(
                "2 processes, one killed: every accepted job succeeds exactly once",
                f"{c.succeeded} of {c.accepted} accepted succeeded, lost {c.lost}, "
                f"doubled {c.doubled} (phantom {c.phantom}), run twice {c.rerun}",
                # A loss is a failure even when B's part at the kill is unknown.
                "INVALID" if k.held and not k.valid else verdict(k.held),
            )
        )
    return targets


def section(title: str, lines: Sequence[str]) -> None:
    print(f"\n## {title}")
    for line in lines:
        print(f"  {line}")
    sys.stdout.flush()


def one_line(error: str) -> str:
    """An error message on one short line, without SQLAlchemy's link to its error page."""
    return " ".join(error.partition("(Background on this error")[0].split())[:160]


def error_key(record: Mapping[str, Any]) -> str:
    """The exception's own line (`module.Error: message`), else the log message."""
    lines = EXCEPTION_LINE.findall(str(record.get("exception") or ""))
    return one_line(lines[-1] if lines else str(record.get("message")))


def summarize_log(path: Path) -> dict[str, int]:
    """The server's ERROR lines, grouped by the exception's last line (or the message)."""
    counts: Counter[str] = Counter()
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("level") not in {"ERROR", "CRITICAL"}:
            continue
        counts[error_key(record)] += 1
    return dict(counts.most_common(8))


# ---------------------------------------------------------------------------- main


@contextmanager
def running_queue(
    args: argparse.Namespace, data_dir: Path, *, servers: Sequence[str], secret_key: str | None
) -> Iterator[tuple[list[ServerProcess], list[Worker]]]:
    """Servers named `servers` on one database (one after the other: the first start makes
    the schema); with --broker also a redis-server and workers A and B, each with a data
    directory of its own, sharing only the database and the broker."""
    with ExitStack() as stack:
        database_url = args.database_url
        settings: dict[str, str] = {}
        if args.broker:
            database_url = database_url or f"sqlite:///{data_dir / 'nogil_bench.db'}"
            broker_url = args.broker_url or stack.enter_context(redis_server())
            settings = {"BROKER_URL": broker_url, "FILE_STORE": "database"}
        started = [
            stack.enter_context(
                running_server(
                    data_dir,
                    database_url=database_url,
                    secret_key=secret_key,
                    log_path=data_dir / f"server-{name}.log",
                    settings=settings,
                )
            )
            for name in servers
        ]
        workers: list[Worker] = []
        if args.broker:
            assert database_url is not None
            for name in ("a", "b"):
                worker = Worker(
                    f"worker-{name}",
                    data_dir / f"worker-{name}",
                    settings | {"DATABASE_URL": database_url, "LOG_FORMAT": "json"},
                )
                stack.callback(worker.stop)
                workers.append(worker)
        yield started, workers


@contextmanager
def service(args: argparse.Namespace, results: Results) -> Iterator[tuple[str, list[OwnProcess]]]:
    """The service to load, and the processes of ours that serve it (none with --url)."""
    if args.url is not None:
        yield args.url.rstrip("/"), []
        return
    with tempfile.TemporaryDirectory(prefix="nogil-bench-load-") as tmp:
        with running_queue(args, Path(tmp), servers=["a"], secret_key=None) as (servers, workers):
            yield servers[0].base_url, [*servers, *workers]
            logs: Counter[str] = Counter()
            for process in [*servers, *workers]:
                logs.update(summarize_log(process.log_path))
        results.server_log = dict(logs.most_common(8))


def run_phases(args: argparse.Namespace, results: Results) -> None:
    with service(args, results) as (base_url, processes):
        connection = Connection(base_url, args.request_timeout)
        health = connection.call("GET", "/health").json()
        connection.close()
        results.service = {
            "url": base_url if args.url else "started by this script",
            "python_version": health.get("python_version"),
            "gil_enabled": health.get("gil_enabled"),
            "cpu_count": health.get("cpu_count"),
            "database": "given by --url's service"
            if args.url
            else ("--database-url" if args.database_url else "SQLite (default)"),
            "queue": "Celery on Redis, 2 workers (FILE_STORE=database)"
            if args.broker
            else "the service's embedded executor",
            # A shared host: other work competes for the same cores.
            "host_load_average_1min_at_start": round(LOAD_AVERAGE_AT_START, 2),
        }
        section("Service", [f"{key}: {value}" for key, value in results.service.items()])
        users = 1 if args.one_user else args.clients
        accounts = []
        if {"submit", "reads"} & set(args.phases):
            accounts = create_accounts(base_url, users, "client", args.request_timeout)

        if "submit" in args.phases:
            progress(f"submit: {args.clients} clients x {args.jobs_per_client} jobs")
            targets = [(base_url, accounts[i % users]) for i in range(args.clients)]
            meter = CpuMeter(processes)
            submissions, wall_s = submit_jobs(
                targets,
                jobs_per_client=args.jobs_per_client,
                idempotency=args.idempotency,
                request_timeout_s=args.request_timeout,
                phase_timeout_s=args.timeout,
            )
            results.submit = summarize_submissions(submissions, wall_s, meter.stop(), args)
            section("Submissions", results.submit.lines())
            meter = CpuMeter(processes)
            with Pool(base_url, args.request_timeout, POLL_THREADS) as calls:
                results.completion = check_completion(
                    calls, accounts, submissions, args.timeout, "completion", meter
                )
            section("Completion", results.completion.lines())

        if "reads" in args.phases:
            results.reads = measure_reads(base_url, accounts[0], args, processes)
            section(f"Reads at {args.connections} connections", results.reads.lines())

        if "saturated" in args.phases:
            results.saturated = measure_saturated(
                base_url, args, int(health["cpu_count"]), processes
            )
            section("Reads under a saturating batch", results.saturated.lines())


def main() -> int:
    args = parse_args()
    config = {key: str(value) for key, value in vars(args).items()}
    config["database_url"] = str(args.database_url and without_password(args.database_url))
    config["broker_url"] = str(args.broker_url and without_password(args.broker_url))
    results = Results(config=config)
    if set(args.phases) & {"submit", "reads", "saturated"}:
        run_phases(args, results)
        if results.server_log:
            section(
                "Server log: ERROR lines", [f"{n} x {key}" for key, n in results.server_log.items()]
            )
    if "kill" in args.phases:
        if args.url is not None:
            results.skipped.append("kill (needs servers this script starts; --url given)")
        else:
            progress("kill: one server and two workers" if args.broker else "kill: two servers")
            results.kill = measure_kill(args)
            section("Two processes, one killed", results.kill.lines())
    results.targets = targets_of(results, args.clients * args.jobs_per_client)
    section(
        "Targets (issue 12)", [f"{t.verdict:<7} {t.name}: {t.measured}" for t in results.targets]
    )
    if results.skipped:
        section("Skipped", results.skipped)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 0 if all(target.verdict == "PASS" for target in results.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
