"""Prometheus metrics for GET /metrics: HTTP traffic, jobs, the queue, the GIL, the process.

Counters and histograms live in one registry per process (they count what this process did);
job states, queue depth and running jobs are read from the database at scrape time, so they
are true even for work queued before a restart. Those reads are reused for
METRICS_CACHE_SECONDS, so that scrapes, however many, cost the database a few queries every
few seconds at most.
"""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import monotonic

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nogil_bench.core import runtime
from nogil_bench.core.models import Status

REQUEST_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
JOB_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes
HTTP_REQUESTS = Counter(
    "nogil_bench_http_requests_total",
    "HTTP requests answered, by route template and status class.",
    ["method", "route", "status_class"],
    registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "nogil_bench_http_request_duration_seconds",
    "HTTP request latency, by route template and status class.",
    ["method", "route", "status_class"],
    buckets=REQUEST_SECONDS_BUCKETS,
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "nogil_bench_job_duration_seconds",
    "Time each finished job spent on its worker, by runner and GIL mode (gil: 1 on, 0 off).",
    ["runner", "gil"],
    buckets=JOB_SECONDS_BUCKETS,
    registry=REGISTRY,
)
# A worker's broker tasks (`nogil-bench worker`), by kind of work: job, batch, benchmark, or
# "unknown" for a task no dispatcher of this version sends (labels stay bounded).
TASKS_STARTED = Counter(
    "nogil_bench_tasks_started",
    "Broker tasks a worker began, by kind of work.",
    ["kind"],
    registry=REGISTRY,
)
TASKS_FINISHED = Counter(
    "nogil_bench_tasks_finished",
    "Broker tasks a worker ended, by kind of work and outcome: ran (rows of it ran), skipped "
    "(none was still queued: a second delivery), rejected (not a task this version sends: "
    "kept as a dead letter), retried (it raised; tried again), requeued (given back to the "
    "broker: the worker was stopping), failed (it raised on its last attempt: kept as a dead "
    "letter).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
# Why a worker kept a task as a dead letter: not a task this version sends (`undecodable`, an
# `unknown_task` name, `invalid` headers or arguments, `undeliverable` work), or `failed` on its
# last attempt.
DEAD_LETTER_REASONS = ("undecodable", "unknown_task", "invalid", "undeliverable", "failed")
TASKS_DEAD_LETTERED = Counter(
    "nogil_bench_tasks_dead_lettered",
    "Broker tasks a worker kept as dead letters instead of running them, by kind of work and "
    "reason: " + ", ".join(DEAD_LETTER_REASONS) + ".",
    ["kind", "reason"],
    registry=REGISTRY,
)
TASK_SECONDS = Histogram(
    "nogil_bench_task_duration_seconds",
    "Time a worker spent on each broker task, by kind of work.",
    ["kind"],
    buckets=JOB_SECONDS_BUCKETS,
    registry=REGISTRY,
)


# Each label set's (counter, histogram) children. `labels()` looks a child up under a lock, from
# keyword arguments, on every call (~10 us of a request's CPU): this keeps them by key. Keys are
# bounded as the labels are (route templates, methods, status classes); a race adds a child
# twice, and both lookups return the same children.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status // 100)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        labels = (method, route, f"{status // 100}xx")
        children = HTTP_REQUESTS.labels(*labels), HTTP_REQUEST_SECONDS.labels(*labels)
        _REQUEST_CHILDREN[key] = children
    requests, latency = children
    requests.inc()
    latency.observe(seconds)


@dataclass(frozen=True)
class QueueCounts:
    """One queue's work in the store (a queue per kind of worker: jobs, benchmarks)."""

    queued: int  # rows waiting to run
    oldest_queued_age_s: float  # how long the oldest of them has waited; 0 when none
    leases: int  # rows running under a live lease


@dataclass(frozen=True)
class BrokerQueues:
    """Messages in the broker, by queue name: waiting to be taken, and kept as dead letters."""

    waiting: dict[str, int]
    dead: dict[str, int]


@dataclass(frozen=True)
class StoreCounts:
    """What the database holds now, as the domain that owns the rows counts it."""

    jobs: dict[tuple[Status, str], int]  # by state and runner
    workers_running: int  # distinct workers holding a live lease on running jobs


class StoreCollector(Collector):
    """Jobs by state and runner, queue depth and running jobs, from the database (reused for
    `cache_seconds`); the GIL's state, live."""

    def __init__(self) -> None:
        # Handed in at start-up by the app, so that core needs no domain's tables.
        self.count_store: Callable[[], StoreCounts] | None = None
        # Every kind of work's queued rows and leases, by the queue it goes to.
        self.count_queues: Callable[[], dict[str, QueueCounts]] = dict
        # With a broker: its queues' depths (the dispatcher's), read with the database.
        self.broker_queues: Callable[[], BrokerQueues] | None = None
        self.cache_seconds = 0.0
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._read: list[Metric] | None = None

    def configure(
        self,
        count_store: Callable[[], StoreCounts],
        count_queues: Callable[[], dict[str, QueueCounts]],
        broker_queues: Callable[[], BrokerQueues] | None,
        cache_seconds: float,
    ) -> None:
        """Reads with `count_store`, `count_queues` (and `broker_queues`) from now on,
        nothing cached."""
        with self._lock:
            self.count_store, self.broker_queues = count_store, broker_queues
            self.count_queues = count_queues
            self.cache_seconds = cache_seconds
            self._read = None

    def collect(self) -> Iterator[Metric]:
        gil = GaugeMetricFamily(
            "nogil_bench_gil_enabled", "1 when the GIL is on in this process, else 0."
        )
        gil.add_metric([], 1.0 if runtime.is_gil_enabled() else 0.0)
        yield gil
        yield from self._store_metrics()

    def _store_metrics(self) -> list[Metric]:
        # One scrape reads at a time: the others wait for its figures instead of querying too.
        with self._lock:
            if self.count_store is None:
                return []
            if self._read is None or monotonic() - self._read_at >= self.cache_seconds:
                self._read = list(self._read_store(self.count_store(), self.count_queues()))
                self._read_at = monotonic()
            return self._read

    def _read_store(self, store: StoreCounts, queues: dict[str, QueueCounts]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "nogil_bench_jobs",
            "Jobs in the store, by state and runner.",
            labels=["state", "runner"],
        )
        counts = store.jobs
        for (status, runner), count in sorted(counts.items()):
            jobs.add_metric([status.value, runner], count)
        yield jobs
        queued = GaugeMetricFamily("nogil_bench_queue_depth", "Jobs waiting to run.")
        queued.add_metric([], sum(n for (s, _), n in counts.items() if s is Status.QUEUED))
        yield queued
        running = GaugeMetricFamily("nogil_bench_running_jobs", "Jobs running now.")
        running.add_metric([], sum(n for (s, _), n in counts.items() if s is Status.RUNNING))
        yield running
        workers = GaugeMetricFamily(
            "nogil_bench_workers_running",
            "Processes (Celery workers, or this service) holding a live lease on running jobs.",
        )
        workers.add_metric([], store.workers_running)
        yield workers
        yield from queue_metrics(queues)
        if self.broker_queues is not None:
            try:
                broker = self.broker_queues()
            except Exception:  # the broker does not answer: its figures are left out
                broker = BrokerQueues({}, {})
            yield from broker_metrics(broker)


def queue_metrics(queues: dict[str, QueueCounts]) -> Iterator[Metric]:
    """Each queue's waiting work, the wait of its oldest, and its live leases, by queue."""
    families = (
        ("nogil_bench_queued", "Work waiting to run, in rows, by queue.", "queued"),
        (
            "nogil_bench_queued_oldest_age_seconds",
            "How long the oldest work waiting in each queue has waited (0 when none waits).",
            "oldest_queued_age_s",
        ),
        ("nogil_bench_leases", "Rows running under a live lease, by queue.", "leases"),
    )
    for name, documentation, field_name in families:
        family = GaugeMetricFamily(name, documentation, labels=["queue"])
        for queue, counts in queues.items():
            family.add_metric([queue], getattr(counts, field_name))
        yield family


def broker_metrics(broker: BrokerQueues) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "nogil_bench_broker_queue_depth", "Tasks waiting in the broker.", labels=["queue"]
    )
    for queue, count in broker.waiting.items():
        depth.add_metric([queue], count)
    yield depth
    dead = GaugeMetricFamily(
        "nogil_bench_dead_letters",
        "Tasks kept in each queue's dead-letter queue, for an operator to look at "
        "(`nogil-bench dead-letters list`).",
        labels=["queue"],
    )
    for queue, count in broker.dead.items():
        dead.add_metric([queue], count)
    yield dead


STORE = StoreCollector()
REGISTRY.register(STORE)
