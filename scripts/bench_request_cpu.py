"""CPU per request, in process: the service's app and the bare framework's `/live` (as in
scripts/reference_app.py) driven through ASGI directly, with no HTTP server or network, and
the user lookup of every authenticated request on 1, 2 and 4 threads at once. It says where a
request's time goes, which wrk through an HTTP server cannot (issue 25, item 3;
docs/serving.md, the request path).

    .venv/bin/python scripts/bench_request_cpu.py                      # log level INFO
    .venv/bin/python scripts/bench_request_cpu.py --log-level WARNING  # no access lines
    .venv/bin/python scripts/bench_request_cpu.py --read-threads 4     # the service's READ_THREADS

A request's figure is the process's CPU time (getrusage: every thread, the executor's too,
idle here) over --requests requests made by --concurrency tasks at once, after a warm-up,
measured --repeats times: the median and the range. The service logs as a served process
does, its JSON lines going to a temporary file. A lookup's figure is each thread's own CPU
time over its calls, averaged over the threads. A hop's figure is the process's CPU per
hop of a call that does nothing, from the event loop to a thread and back, `--concurrency` at
once: FastAPI's `run_in_threadpool` (anyio's worker threads) against the service's read threads
(core.reads), as many as the service has.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message

from nogil_bench.auth.dependencies import load_user
from nogil_bench.core.config import Settings
from nogil_bench.core.reads import READS
from nogil_bench.main import create_app

SECRET = "a-benchmark-secret-of-enough-length-0123456789"  # noqa: S105 - a throwaway key
JOB = {"source": {"width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
LIST_ROWS = 20
ME = "/api/v1/users/me"
JOBS = "/api/v1/jobs"
SETUP_TIMEOUT_S = 60.0
LOOKUP_THREADS = (1, 2, 4)

Headers = Sequence[tuple[bytes, bytes]]


async def call(
    app: ASGIApp, method: str, path: str, headers: Headers = (), body: bytes = b""
) -> tuple[int, bytes]:
    """One request through the app's ASGI interface: its status and body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    received = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app answers
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


async def cpu_per_request_us(
    request: Callable[[], Awaitable[tuple[int, bytes]]], count: int, concurrency: int
) -> float:
    async def client(calls: int) -> None:
        for _ in range(calls):
            status, body = await request()
            assert status == 200, (status, body[:200])

    for _ in range(max(1, count // 10)):  # warm-up: caches, pools, specialised bytecode
        await request()
    started = process_cpu_s()
    await asyncio.gather(*(client(count // concurrency) for _ in range(concurrency)))
    return (process_cpu_s() - started) / (count // concurrency * concurrency) * 1e6


def summary(values: Sequence[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


async def prepare(app: ASGIApp) -> Headers:
    """A user with LIST_ROWS finished jobs: the bearer header that reads them."""
    credentials = {"email": "bench@example.com", "password": "a fine password"}
    as_json = [(b"content-type", b"application/json")]
    status, body = await call(
        app, "POST", "/api/v1/auth/register", as_json, json.dumps(credentials).encode()
    )
    assert status == 201, body
    form = b"username=bench%40example.com&password=a+fine+password"
    as_form = [(b"content-type", b"application/x-www-form-urlencoded")]
    status, body = await call(app, "POST", "/api/v1/auth/token", as_form, form)
    assert status == 200, body
    bearer = [(b"authorization", f"Bearer {json.loads(body)['access_token']}".encode())]
    for _ in range(LIST_ROWS):
        status, body = await call(
            app, "POST", "/api/v1/jobs", [*bearer, *as_json], json.dumps(JOB).encode()
        )
        assert status == 202, body
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while time.monotonic() < deadline:
        _, body = await call(app, "GET", "/api/v1/jobs?status=succeeded", bearer)
        if json.loads(body)["count"] == LIST_ROWS:
            return bearer
        await asyncio.sleep(0.1)
    raise SystemExit(f"the set-up's {LIST_ROWS} jobs did not finish in {SETUP_TIMEOUT_S:.0f} s")


def bare_app() -> FastAPI:
    """scripts/reference_app.py's bare `/live`: the framework and nothing else. (That module's
    `user` table cannot share a process with the service's models.)"""
    app = FastAPI(title="bare")

    @app.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    return app


def nothing() -> None:
    return None


Hop = Callable[[Callable[[], None]], Awaitable[None]]


async def hop_cpu_us(hop: Hop, args: argparse.Namespace) -> float:
    """The process's CPU per hop of `nothing` through `hop`, --concurrency at once."""

    async def hops() -> tuple[int, bytes]:
        await hop(nothing)
        return 200, b""

    return await cpu_per_request_us(hops, args.requests, args.concurrency)


def lookup_cpu_us(engine: Engine, user_id: uuid.UUID, threads: int, calls: int) -> float:
    """The user lookup's CPU per call, with `threads` threads calling it at once."""
    per_thread: list[float] = []
    start = threading.Barrier(threads)

    def lookups() -> None:
        load_user(engine, user_id)
        start.wait()
        started = thread_cpu_s()
        for _ in range(calls):
            load_user(engine, user_id)
        per_thread.append((thread_cpu_s() - started) / calls * 1e6)

    workers = [threading.Thread(target=lookups) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statistics.mean(per_thread)


async def measure(args: argparse.Namespace, workdir: Path) -> str:
    settings = Settings(
        DATA_DIR=workdir / "data",
        SECRET_KEY=SecretStr(SECRET),
        LOG_LEVEL=args.log_level,
        ARGON2_TIME_COST=1,
        ARGON2_MEMORY_KIB=8,
        SUBMISSION_RATE_LIMIT="1000000/second",
        READ_THREADS=args.read_threads,
    )
    service = create_app(settings)
    reference = bare_app()
    async with service.router.lifespan_context(service):
        bearer = await prepare(service)
        requests: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]] = {
            "service `/health/live`": lambda: call(service, "GET", "/health/live"),
            "service `/api/v1/users/me`": lambda: call(service, "GET", "/api/v1/users/me", bearer),
            "service `/api/v1/jobs` (20 rows)": lambda: call(
                service, "GET", "/api/v1/jobs", bearer
            ),
            "reference bare `/live`": lambda: call(reference, "GET", "/live"),
        }
        figures: dict[str, list[float]] = {name: [] for name in requests}
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats}", file=sys.__stderr__, flush=True)
            for name, request in requests.items():  # interleaved, each repeat
                figures[name].append(
                    await cpu_per_request_us(request, args.requests, args.concurrency)
                )
        hops: dict[str, Hop] = {
            "FastAPI's `run_in_threadpool` (anyio's threads)": run_in_threadpool,
            f"the service's read threads ({settings.read_threads})": READS.run,
        }
        hop_figures: dict[str, list[float]] = {name: [] for name in hops}
        for _ in range(args.repeats):
            for name, hop in hops.items():
                hop_figures[name].append(await hop_cpu_us(hop, args))
        _, me = await call(service, "GET", ME, bearer)
        user_id = uuid.UUID(json.loads(me)["id"])
        engine: Engine = service.state.engine
        lookups = {
            threads: [
                lookup_cpu_us(engine, user_id, threads, args.lookups) for _ in range(args.repeats)
            ]
            for threads in LOOKUP_THREADS
        }
    lines = [
        f"In process, log level {args.log_level}, {args.requests} requests x {args.repeats} "
        f"repeats, {args.concurrency} at once; {sys.version.split()[0]}, GIL "
        f"{'on' if sys._is_gil_enabled() else 'off'}, {os.cpu_count()} CPUs, "
        f"{settings.read_threads} read thread(s)",
        "",
        "| request | CPU us per request: median (range) |",
        "|---|---:|",
        *(f"| {name} | {summary(values)} |" for name, values in figures.items()),
        "",
        "| a hop that does nothing, loop to thread and back | CPU us per hop: median (range) |",
        "|---|---:|",
        *(f"| {name} | {summary(values)} |" for name, values in hop_figures.items()),
        "",
        "| user lookup (`load_user`, SQLite) | CPU us per call and thread: median (range) |",
        "|---|---:|",
        *(
            f"| {threads} thread(s) at once | {summary(values)} |"
            for threads, values in lookups.items()
        ),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", help="the service's (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=4000, help="per endpoint and repeat")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=2000, help="user lookups per thread")
    parser.add_argument(
        "--read-threads",
        type=int,
        help="the service's READ_THREADS (default: its own default for SQLite on this machine)",
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.repeats, args.lookups) < 1:
        parser.error("--requests, --concurrency, --repeats and --lookups must be positive")
    if args.read_threads is not None and args.read_threads < 1:
        parser.error("--read-threads must be positive")
    if args.requests < args.concurrency:
        parser.error("--requests must be at least --concurrency")
    args.log_level = args.log_level.upper()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nogil-bench-cpu-") as tmp:
        workdir = Path(tmp)
        # The service's log lines go to a file, as a served process's would to its log.
        with (workdir / "service.log").open("w") as log:
            sys.stderr = log
            try:
                table = asyncio.run(measure(args, workdir))
            finally:
                sys.stderr = sys.__stderr__
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
