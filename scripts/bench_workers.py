"""Celery workers measured (issue 14): what the broker round trip costs a job, and jobs
completed per second with one worker and with two, on this machine.

    .venv/bin/python scripts/bench_workers.py                      # SQLite, 6 rounds
    .venv/bin/python scripts/bench_workers.py --rounds 10 --jobs 60 --json workers.json
    .venv/bin/python scripts/bench_workers.py --database-url postgresql+psycopg://u:p@host/db \
        --embedded-database-url postgresql+psycopg://u:p@host/db2

It starts its own redis-server (Debian's package) on a free port (or takes --broker-url, e.g. a
RabbitMQ's amqp:// URL), a service with that broker and two `nogil-bench worker` processes,
and, for the baseline, a service without a broker (the embedded executor) on a database of its
own (SQLite unless --embedded-database-url). Both phases
interleave their configurations round by round (A B, then B A), so a slow spell of the host
lands on both sides:

  overhead    one job at a time (nothing else queued): a 64x64 invert on `sequential`. Its
              overhead is queued_at to finished_at less the run itself (latency_s): the claim,
              the outcome's write and, with a broker, the dispatch and the broker round trip.
              Reported per target as the median [95% CI], and the broker's extra cost as the
              median of per-round differences [95% CI].
  throughput  --jobs single jobs (pure-Python box blur 64x64, `sequential`) posted at once;
              rate = jobs / (first queued_at to last finished_at). One worker: the second
              worker's consumer is cancelled (Celery remote control), then added back. The
              ratio two/one is the median of per-round ratios [95% CI], with a verdict.

At the end: each worker's peak RSS (VmHWM, its process and children). Confidence intervals are
exact binomial intervals for the median (bench/stats.py); fewer than 6 rounds give none.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2

from nogil_bench.bench.stats import compare, median_interval
from nogil_bench.core.config import Settings
from nogil_bench.distributed.celery_app import make_celery, work_queue

sys.path.insert(0, str(Path(__file__).parent))
from live_server import BROKER_URL_HELP, ServerProcess, Worker, redis_server, running_server

JOBS_QUEUE = work_queue("jobs")
# Each round posts --jobs at once: the service's per-user submission limit would refuse them.
UNLIMITED = {"SUBMISSION_RATE_LIMIT": "1000000/second"}

TINY = {"source": {"width": 64, "height": 64}, "pipeline": [{"op": "invert"}]}
PURE = {"source": {"width": 64, "height": 64}, "pipeline": [{"op": "box_blur"}]}
WAIT_S = 600.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="default: %(default)s")
    parser.add_argument(
        "--jobs", type=int, default=40, help="jobs per throughput run (default: %(default)s)"
    )
    parser.add_argument(
        "--overhead-jobs", type=int, default=5, help="jobs per overhead run (default: %(default)s)"
    )
    parser.add_argument("--database-url", help="the broker service's database (default: SQLite)")
    parser.add_argument(
        "--embedded-database-url",
        help="the embedded executor's database (default: SQLite); with --database-url, another "
        "database on the same server compares like with like",
    )
    parser.add_argument("--broker-url", help=BROKER_URL_HELP)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args(argv)


class Client:
    """A user of one service."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = httpx2.Client(base_url=f"{server.base_url}/api/v1", timeout=60)
        email = f"bench-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(16)
        self.http.post("/auth/register", json={"email": email, "password": password})
        token = self.http.post("/auth/token", data={"username": email, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def submit(self, body: dict[str, Any]) -> str:
        response = self.http.post("/jobs", json=body | {"runner": "sequential"})
        response.raise_for_status()
        job_id: str = response.json()["id"]
        return job_id

    def wait(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(job_ids):
            for job_id in job_ids:
                if job_id in done:
                    continue
                job = self.http.get(f"/jobs/{job_id}").json()
                if job["status"] in {"succeeded", "failed", "cancelled"}:
                    if job["status"] != "succeeded":
                        raise SystemExit(f"job {job_id} {job['status']}: {job['error']}")
                    done[job_id] = job
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not finish in time")
            time.sleep(0.02)
        return [done[job_id] for job_id in job_ids]


def moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def overhead_ms(client: Client, count: int) -> list[float]:
    """Queued to finished, less the run, for jobs sent one at a time."""
    values = []
    for _ in range(count):
        [job] = client.wait([client.submit(TINY)])
        queue_to_done = moment(job["finished_at"]) - moment(job["queued_at"])
        values.append((queue_to_done - job["latency_s"]) * 1000)
    return values


def jobs_per_second(client: Client, count: int, body: dict[str, Any] = PURE) -> float:
    """`count` jobs of `body` posted at once: jobs / (first queued_at to last finished_at)."""
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(lambda _: client.submit(body), range(count)))
    jobs = client.wait(job_ids)
    first = min(moment(job["queued_at"]) for job in jobs)
    last = max(moment(job["finished_at"]) for job in jobs)
    return count / (last - first)


def interval(values: Sequence[float]) -> str:
    found = median_interval(values)
    middle = statistics.median(values)
    if found is None:
        return f"{middle:.1f} (no CI from {len(values)})"
    return f"{middle:.1f} [{found.low:.1f}, {found.high:.1f}]"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    results: dict[str, Any] = {"rounds": args.rounds, "jobs": args.jobs, "cpus": os.cpu_count()}
    results["databases"] = {  # the dialect only: a URL may hold a password
        target: (url or "sqlite").split(":")[0].split("+")[0]
        for target, url in (("broker", args.database_url), ("embedded", args.embedded_database_url))
    }
    with ExitStack() as stack:
        broker_url = args.broker_url or stack.enter_context(redis_server())
        results["broker"] = broker_url.split(":")[0]  # the scheme only: a URL may hold a password
        cluster = {"BROKER_URL": broker_url, "LOG_LEVEL": "WARNING", **UNLIMITED}
        if args.database_url:
            cluster["DATABASE_URL"] = args.database_url
        else:
            cluster["DATABASE_URL"] = f"sqlite:///{work / 'broker' / 'nogil_bench.db'}"
        (work / "broker").mkdir()
        (work / "embedded").mkdir()
        brokered = stack.enter_context(
            running_server(work / "broker", settings=cluster, database_url=None, secret_key=None)
        )
        embedded = stack.enter_context(
            running_server(
                work / "embedded", database_url=args.embedded_database_url, settings=UNLIMITED
            )
        )
        workers = [Worker(name, work / name, cluster) for name in ("worker-1", "worker-2")]
        for worker in workers:
            stack.callback(worker.stop)
        celery = make_celery(Settings(BROKER_URL=broker_url, _env_file=None))  # type: ignore[call-arg]
        clients = {"embedded": Client(embedded), "broker": Client(brokered)}
        for client in clients.values():  # warm-up: first requests, pools, imports
            overhead_ms(client, 2)
            jobs_per_second(client, 4)

        overheads: dict[str, list[float]] = {"embedded": [], "broker": []}
        extra_ms: list[float] = []
        rates: dict[int, list[float]] = {1: [], 2: []}
        for round_index in range(args.rounds):
            order = ["embedded", "broker"] if round_index % 2 == 0 else ["broker", "embedded"]
            medians = {}
            for target in order:
                values = overhead_ms(clients[target], args.overhead_jobs)
                overheads[target] += values
                medians[target] = statistics.median(values)
            extra_ms.append(medians["broker"] - medians["embedded"])
            for count in (1, 2) if round_index % 2 == 0 else (2, 1):
                if count == 1:
                    celery.control.cancel_consumer(
                        JOBS_QUEUE, destination=[workers[1].node], reply=True
                    )
                rates[count].append(jobs_per_second(clients["broker"], args.jobs))
                if count == 1:
                    celery.control.add_consumer(
                        JOBS_QUEUE, destination=[workers[1].node], reply=True
                    )
            print(
                f"round {round_index + 1}/{args.rounds}: overhead embedded "
                f"{medians['embedded']:.1f} ms, broker {medians['broker']:.1f} ms; "
                f"1 worker {rates[1][-1]:.1f}/s, 2 workers {rates[2][-1]:.1f}/s",
                flush=True,
            )
        scaling = compare(
            "1 worker", "2 workers", [b / a for a, b in zip(rates[1], rates[2], strict=True)]
        )
        results |= {
            "overhead_ms": overheads,
            "broker_extra_ms_per_round": extra_ms,
            "jobs_per_s": {str(count): values for count, values in rates.items()},
            "two_vs_one": {
                "ratio": scaling.ratio,
                "ci": [scaling.ci_low, scaling.ci_high],
                "verdict": scaling.text,
            },
            "worker_peak_rss_bytes": {worker.name: worker.peak_rss_bytes() for worker in workers},
        }
    print()
    print(f"per-job overhead, embedded executor:   {interval(overheads['embedded'])} ms")
    print(
        f"{'per-job overhead, Celery on ' + results['broker'] + ':':39}"
        f"{interval(overheads['broker'])} ms"
    )
    print(f"broker's extra cost per job (rounds):  {interval(extra_ms)} ms")
    print(f"jobs per second, 1 worker:             {interval(rates[1])}")
    print(f"jobs per second, 2 workers:            {interval(rates[2])}")
    print(f"2 workers vs 1:                        {scaling.text}")
    for name, peak in results["worker_peak_rss_bytes"].items():
        print(f"peak RSS, {name}:                    {peak / 2**20:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
