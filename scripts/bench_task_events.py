"""What Celery's task events (for Flower) cost a worker: jobs per second with them and without.

    .venv/bin/python scripts/bench_task_events.py                 # 8 rounds of 200 jobs, Redis
    .venv/bin/python scripts/bench_task_events.py --broker-url amqp://... --json events.json

It starts a redis-server of its own (or takes --broker-url), a service on SQLite with that
broker, and two `nogil-bench worker --queues jobs`: one sending task events (the default), one
with NOGIL_BENCH_WORKER_TASK_EVENTS=false. Each round runs --jobs tiny jobs (a 64x64 invert on
`sequential`, bench_workers.py's TINY) on each worker alone, the other's consumer cancelled
(Celery remote control), in A B then B A order. Rate = jobs / (first queued_at to last
finished_at); the comparison is the median of per-round ratios with its 95% CI and a verdict.
"""

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench_workers import JOBS_QUEUE, TINY, UNLIMITED, Client, interval, jobs_per_second
from live_server import BROKER_URL_HELP, Worker, service_with_broker

from nogil_bench.bench.stats import compare
from nogil_bench.core.config import Settings
from nogil_bench.distributed.celery_app import make_celery


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="default: %(default)s")
    parser.add_argument("--jobs", type=int, default=200, help="per run (default: %(default)s)")
    parser.add_argument("--broker-url", help=BROKER_URL_HELP)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-task-events-"))
    rates: dict[str, list[float]] = {"events": [], "no events": []}
    with ExitStack() as stack:
        service, cluster = stack.enter_context(
            service_with_broker(work, args.broker_url, UNLIMITED)
        )
        broker_url = cluster["BROKER_URL"]
        workers = {
            "events": Worker("events", work / "events", cluster, ("worker", "--queues", "jobs")),
            "no events": Worker(
                "quiet",
                work / "quiet",
                cluster | {"WORKER_TASK_EVENTS": "false"},
                ("worker", "--queues", "jobs"),
            ),
        }
        for worker in workers.values():
            stack.callback(worker.stop)
        celery = make_celery(Settings(BROKER_URL=broker_url, _env_file=None))  # type: ignore[call-arg]
        client = Client(service)
        jobs_per_second(client, 20, TINY)  # warm-up, both workers
        for round_index in range(args.rounds):
            order = list(rates) if round_index % 2 == 0 else list(reversed(rates))
            for name in order:
                other = workers["no events" if name == "events" else "events"]
                celery.control.cancel_consumer(JOBS_QUEUE, destination=[other.node], reply=True)
                rates[name].append(jobs_per_second(client, args.jobs, TINY))
                celery.control.add_consumer(JOBS_QUEUE, destination=[other.node], reply=True)
            print(
                f"round {round_index + 1}/{args.rounds}: with events "
                f"{rates['events'][-1]:.1f}/s, without {rates['no events'][-1]:.1f}/s",
                flush=True,
            )
    # compare() takes baseline time / candidate time: for rates, candidate / baseline.
    ratios = [a / b for a, b in zip(rates["events"], rates["no events"], strict=True)]
    verdict = compare("no events", "events", ratios)
    print()
    print(f"jobs per second with task events:    {interval(rates['events'])}")
    print(f"jobs per second without task events: {interval(rates['no events'])}")
    print(f"with events against without:          {verdict.text}")
    if args.json:
        document = {
            "broker": (args.broker_url or "redis").split(":")[0],
            "jobs": args.jobs,
            "jobs_per_s": rates,
            "verdict": verdict.text,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
