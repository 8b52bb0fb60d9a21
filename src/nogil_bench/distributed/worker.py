"""`nogil-bench worker`: a Celery worker that runs the service's queue on its machine.

One execution at a time (a thread pool of one: the consumer stays responsive meanwhile), so
two executions never share the machine's cores and skew each other's timings; the runners
then use every core for that one execution. The worker holds what it runs with a lease that
its heartbeat renews, like the embedded executor; on SIGTERM (Celery's warm shutdown) the
running task finishes, a benchmark stops at its next configuration and goes back to the
queue, and tasks not started go back to the broker.
"""

import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task, signals
from celery.bin.base import CLIContext
from celery.bin.worker import worker as celery_worker_command
from celery.exceptions import Reject
from loguru import logger
from prometheus_client import start_http_server
from sqlalchemy import Engine

from nogil_bench.core import metrics, runtime
from nogil_bench.core.config import Settings, get_settings
from nogil_bench.core.db import make_engine, wait_for_database
from nogil_bench.core.logging import configure_logging
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.core.work import Context, Delivery
from nogil_bench.distributed import dead_letters
from nogil_bench.distributed.celery_app import (
    RUN_TASK,
    dead_queue,
    make_celery,
    work_queue,
)
from nogil_bench.distributed.dead_letters import DEATH_HEADER, death, origin_of
from nogil_bench.work.executor import keep_interrupts_from_children
from nogil_bench.work.queue import UndeliverableError, renew_leases, run_delivery
from nogil_bench.work.registry import WORK_KINDS, WORK_QUEUES, queues_from

# Loguru's levels that Celery's --loglevel does not know.
CELERY_LOG_LEVELS = {"TRACE": "DEBUG", "SUCCESS": "INFO"}
# Celery's own options for the queues it consumes: `--queues` takes kinds of work instead.
QUEUE_OPTIONS = frozenset({"-Q", "--queues", "-X", "--exclude-queues"})


def sets_option(arg: str, options: frozenset[str]) -> bool:
    """Whether `arg` sets one of `options`: `--queues x`, `--queues=x`, `-Q x` or `-Qx`."""
    if arg.startswith("--"):
        return arg.split("=", 1)[0] in options
    return arg[:2] in options


class GilEnabledError(RuntimeError):
    """An import turned the GIL back on in a free-threaded worker: its runs would be serial."""


def check_gil_off() -> None:
    """Refuses to run CPU-bound work with the GIL on when nobody asked for it (PYTHON_GIL=1
    or -X gil=1 are allowed: that is how GIL=1 is measured). Names the modules that turned it
    on, when the interpreter's warning about them was seen."""
    if not runtime.is_free_threaded_build() or not runtime.is_gil_enabled():
        return
    if runtime.gil_forced_on_by():
        logger.warning(runtime.gil_warning())
        return
    culprits = runtime.gil_reenabled_by()
    named = f"module {', '.join(culprits)}" if culprits else "an extension module"
    raise GilEnabledError(
        f"the GIL is on in this free-threaded worker: {named} turned it back on at import "
        "(e.g. hiredis: install plain `redis`, never `redis[hiredis]`); refusing to start"
    )


@dataclass
class WorkerState:
    """What the tasks of this worker process share."""

    settings: Settings
    engine: Engine
    boot_id: uuid.UUID
    name: str
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def context(self) -> Context:
        return Context(self.engine, self.settings, self.boot_id, self.name, self.stopping.is_set)


STATE: WorkerState | None = None


def state() -> WorkerState:
    if STATE is None:
        raise RuntimeError("the worker is not started: run `nogil-bench worker`")
    return STATE


class DeadLetterError(Exception):
    """A task this worker keeps as a dead letter: `reason` is one of
    metrics.DEAD_LETTER_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def run(task: Task[Any, Any], *args: Any, **kwargs: Any) -> int:
    """RUN_TASK (kind, work id[, part]): work of that kind whole, or the rows of it in the
    part, if still queued; returns how many rows ran. Counted in the worker's metrics by kind
    and outcome, and timed. Its arguments are checked here, not by Celery, so that a task
    with others is kept rather than failed.

    A task this version does not send is kept as a dead letter, as is one that raised on its
    last attempt: an error outside the work's own handling (the work's own failures are
    written on its rows), retried MAX_ATTEMPTS - 1 times first, a few seconds apart."""
    kind = args[0] if args else None
    label = kind if isinstance(kind, str) and kind in WORK_KINDS else "unknown"  # bounded
    metrics.TASKS_STARTED.labels(label).inc()
    started = time.perf_counter()
    outcome = "failed"
    try:
        ran, outcome = run_task(*task_arguments(args, kwargs))
    except Reject:
        outcome = "requeued"
        raise
    except DeadLetterError as error:
        outcome = "rejected"
        keep_dead(task, label, error.reason, str(error))
        return 0
    except Exception as error:
        attempts = state().settings.MAX_ATTEMPTS
        if task.request.retries + 1 < attempts:
            outcome = "retried"
            logger.warning(
                "{} {} raised on attempt {} of {}, retried: {!r}",
                kind,
                args[1:2],
                task.request.retries + 1,
                attempts,
                error,
            )
            countdown = 2**task.request.retries
            raise task.retry(exc=error, countdown=countdown, max_retries=None) from error
        logger.exception("{} {} raised on its last attempt ({})", kind, args[1:2], attempts)
        keep_dead(task, label, "failed", f"{type(error).__name__}: {error}")
        return 0
    finally:
        metrics.TASKS_FINISHED.labels(label, outcome).inc()
        metrics.TASK_SECONDS.labels(label).observe(time.perf_counter() - started)
    return ran


def keep_dead(task: Task[Any, Any], kind: str, reason: str, detail: str) -> None:
    """Keeps the running task as a dead letter of the queue it came from. On RabbitMQ, by
    rejecting it into its queue's dead-letter exchange (raises Reject); on Redis, by
    publishing a copy, with why, to the dead-letter list (the task then ends, acknowledged)."""
    metrics.TASKS_DEAD_LETTERED.labels(kind, reason).inc()
    queue = origin_of(task.request.delivery_info) or WORK_QUEUES[0]
    logger.error(
        "task {} kept as a dead letter of {} ({}): {}", task.request.id, queue, reason, detail
    )
    if state().settings.broker_kind == "amqp":
        raise Reject(detail, requeue=False) from None
    task.app.send_task(
        RUN_TASK,
        args=task.request.args,
        kwargs=dict(task.request.kwargs or {}),
        task_id=task.request.id,
        queue=dead_queue(queue),
        headers={DEATH_HEADER: death(reason, detail, queue)},
        retry=False,
        ignore_result=True,
    )


def task_arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[str, str, Sequence[str]]:
    """RUN_TASK's (kind, work id, part), as dispatch.task_args sends them; DeadLetterError
    for anything else."""
    if kwargs or not 2 <= len(args) <= 3 or (len(args) == 3 and not isinstance(args[2], list)):
        raise DeadLetterError(
            "invalid", f"not (kind, work id[, part]): args {args!r}, kwargs {kwargs!r}"
        )
    return args[0], args[1], args[2] if len(args) == 3 else ()


def run_task(kind: str, work_id: str, part: Sequence[str]) -> tuple[int, str]:
    """`run`'s work: how many rows ran, and the task's outcome (see metrics.TASKS_FINISHED).
    Raises DeadLetterError for a task no dispatcher of this version sends."""
    worker = state()
    if worker.stopping.is_set():
        raise Reject("the worker is stopping", requeue=True)
    keep_interrupts_from_children()
    try:
        delivery = Delivery(kind, uuid.UUID(work_id), tuple(uuid.UUID(row) for row in part))
    except (ValueError, TypeError, AttributeError) as error:
        raise DeadLetterError(
            "undeliverable", f"not a work id ({error}): {work_id!r}, {part!r}"
        ) from None
    try:
        ran = run_delivery(worker.context, delivery)
    except UndeliverableError as error:
        raise DeadLetterError("undeliverable", str(error)) from None
    if part:
        logger.info("{} {}: ran {} of the part's {} rows", kind, work_id, ran, len(part))
    elif not ran:
        logger.info(
            "{} {} is no longer queued (taken, finished or deleted): skipped", kind, work_id
        )
    return ran, "ran" if ran else "skipped"


def register_tasks(celery: Celery) -> None:
    celery.task(name=RUN_TASK, bind=True, acks_late=True)(run)


def heartbeat(worker: WorkerState) -> None:
    """Renews this worker's leases every third of LEASE_SECONDS until the process ends."""
    interval_s = worker.settings.LEASE_SECONDS / 3
    while True:
        try:
            renew_leases(worker.engine, worker.boot_id, worker.settings.LEASE_SECONDS)
        except Exception:
            logger.exception("worker heartbeat: could not renew leases")
        threading.Event().wait(interval_s)


def start(settings: Settings) -> WorkerState:
    """Connects to the database (upgrading its schema, as the service does), names this
    process, and starts the heartbeat."""
    global STATE  # noqa: PLW0603 - one worker per process
    engine = make_engine(settings)
    wait_for_database(engine, settings)
    upgrade_database(engine)
    boot_id = uuid.uuid7()
    name = settings.WORKER_NAME or runtime.process_name("worker")
    logger.configure(extra={"boot_id": str(boot_id)})
    STATE = WorkerState(settings, engine, boot_id, name)
    threading.Thread(
        target=heartbeat, args=(STATE,), name="nogil-bench-heartbeat", daemon=True
    ).start()
    if settings.WORKER_METRICS_PORT:
        start_http_server(settings.WORKER_METRICS_PORT, registry=metrics.REGISTRY)
        logger.info("metrics on :{}/metrics", settings.WORKER_METRICS_PORT)
    logger.info(
        "worker {} (boot {}, pid {}) on Python {}, GIL enabled: {}, {} CPUs",
        name,
        boot_id,
        os.getpid(),
        runtime.python_version(),
        runtime.is_gil_enabled(),
        runtime.cpu_count(),
    )
    return STATE


@signals.worker_shutting_down.connect
def _stop_taking_work(**_: object) -> None:
    """Warm shutdown: a running benchmark stops at its next configuration (put back)."""
    if STATE is not None:
        logger.info("worker stopping: the running task finishes, the rest stays queued")
        STATE.stopping.set()


@signals.worker_init.connect
def _refuse_the_gil(**_: object) -> None:
    try:
        check_gil_off()
    except GilEnabledError as error:
        logger.critical("{}", error)
        raise SystemExit(1) from error


def celery_worker_argv(
    name: str, settings: Settings, queues: Sequence[str], argv: Sequence[str] = ()
) -> list[str]:
    """The options of Celery's worker command for this worker, taking the kinds of work in
    `queues`; `argv` comes last, so that an operator's options win."""
    return [
        "--pool",
        "threads",
        "--concurrency",
        "1",
        "--queues",
        ",".join(work_queue(queue) for queue in queues),
        "--hostname",
        name.replace(":", "-"),
        "--without-gossip",
        "--without-mingle",
        # Task events, for Flower's view of tasks: a few messages per task (a job, a chunk of a
        # batch or a benchmark, never a fine-grained map item).
        *(["--task-events"] if settings.WORKER_TASK_EVENTS else []),
        "--loglevel",
        CELERY_LOG_LEVELS.get(settings.LOG_LEVEL, settings.LOG_LEVEL),
        *argv,
    ]


def run_celery_worker(celery: Celery, argv: Sequence[str]) -> None:
    """`celery worker` with `argv`, through Celery's own worker command, so it takes every
    option `celery worker` takes. Not through `celery.worker_main()`: that goes through the
    whole `celery` command line, which imports click-repl and prompt_toolkit (for `celery
    shell` and `celery amqp`); the production image does not ship them. NO_COLOR turns
    colours off, as it does for `celery`; the worker's exit code is not passed on (neither was
    it by `worker_main()`)."""
    celery_worker_command.main(
        args=list(argv),
        prog_name="nogil-bench worker",
        standalone_mode=False,
        obj=CLIContext(
            app=celery, no_color=bool(os.environ.get("NO_COLOR")), workdir=None, quiet=False
        ),
    )


def main(queues: str = "all", argv: Sequence[str] = ()) -> None:
    """Runs the worker on the queues of the kinds of work in `queues` (see `queues_from`)
    until SIGTERM or SIGINT; `argv` goes to Celery's worker (e.g. `--loglevel DEBUG`)."""
    settings = get_settings()
    configure_logging(settings)
    if settings.BROKER_URL is None:
        sys.exit(
            "nogil-bench worker: set NOGIL_BENCH_BROKER_URL (redis://host:port/db or "
            "amqp://user:password@host:port/vhost)"
        )
    if taken := [arg for arg in argv if sets_option(arg, QUEUE_OPTIONS)]:
        sys.exit(
            f"nogil-bench worker: {' '.join(taken)}: the queues are chosen by kind of work, "
            "with --queues jobs,benchmarks"
        )
    try:
        kinds = queues_from(queues)
        check_gil_off()
    except (ValueError, GilEnabledError) as error:
        sys.exit(f"nogil-bench worker: {error}")
    worker = start(settings)
    celery = make_celery(settings)
    register_tasks(celery)
    celery.conf.worker_consumer = dead_letters.DeadLetteringConsumer.path
    assert settings.broker_kind is not None
    dead_letters.declare(celery, settings.broker_kind)
    logger.info("taking {}", ", ".join(kinds))
    run_celery_worker(celery, celery_worker_argv(worker.name, settings, kinds, argv))
