"""`nogil-bench task-worker`: the Celery workers the celery runners map their tasks over.

Unlike `nogil-bench worker`, a task worker needs no database: it receives a sealed function
and task (distributed/sealed.py), runs it, and sends back the sealed outcome with where it ran
and whether the GIL was on there, so the runner can report its pool and refuse a mismatch.
Its pool kind (threads or prefork) picks its queue; its concurrency is how many tasks it runs
at once.
"""

import hmac
import logging
import os
import pickle
import sys
import threading
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, Task, signals
from kombu.utils.url import maybe_sanitize_url
from loguru import logger

from nogil_bench.core import runtime
from nogil_bench.core.config import Settings, get_settings
from nogil_bench.core.logging import configure_logging
from nogil_bench.distributed import registry
from nogil_bench.distributed.celery_app import MAP_TASK, TASK_QUEUES, make_celery
from nogil_bench.distributed.sealed import Label, seal, unseal
from nogil_bench.distributed.worker import (
    CELERY_LOG_LEVELS,
    GilEnabledError,
    check_gil_off,
    run_celery_worker,
    sets_option,
)

POOLS = tuple(TASK_QUEUES)
# v2: seals carry a label (purpose, task id, deadline); v1 seals fail the signature check.
SEAL_KEY_LABEL = b"nogil-bench seal v2"
# Celery worker options that would make the worker differ from what it announces.
OWN_OPTIONS = frozenset(
    {"--concurrency", "--pool", "--queues", "--hostname", "--autoscale", "--exclude-queues"}
    | {"-c", "-P", "-Q", "-n", "-X"}
)


def signing_key(settings: Settings) -> bytes:
    """The key both sides seal with: derived from SECRET_KEY, so that it differs from the key
    that signs access tokens. A SECRET_KEY this process made up would match nobody's."""
    if settings.SECRET_KEY is None or settings.secret_generated:
        raise ValueError(
            "the celery runners sign what they send with NOGIL_BENCH_SECRET_KEY: set it, to "
            "the same value, for the service and every task worker"
        )
    return hmac.digest(settings.SECRET_KEY.get_secret_value().encode(), SEAL_KEY_LABEL, "sha256")


def carriable_error(error: BaseException) -> BaseException:
    """`error` if pickle can carry it back and rebuild it (an exception whose __init__ takes
    other arguments than it passes on pickles, then fails to unpickle); otherwise a
    RuntimeError with its type name and message."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object, just made
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def map_one(task: Task[Any, Any], payload: str) -> str:
    """Runs one sealed (function, task) pair sent as this very task, before its deadline; the
    reply is (ok, value or error, where), sealed for this task with the same deadline."""
    key = signing_key(get_settings())
    task_id = task.request.id
    assert task_id is not None, "Celery names every task it runs"
    (fn, item), label = unseal(payload, key, purpose="task", task_id=task_id)
    reply = Label("reply", task_id, label.expires_at)
    where = {"worker": task.request.hostname, "pid": os.getpid(), "gil": runtime.is_gil_enabled()}
    try:
        return seal((True, fn(item), where), key, reply)
    except Exception as error:
        return seal((False, carriable_error(error), where), key, reply)


def register_map_task(celery: Celery) -> None:
    # A task that kills its process (a prefork child segfaults, is OOM-killed) fails with
    # WorkerLostError instead of going back to the queue to kill the next one.
    celery.task(name=MAP_TASK, bind=True, ignore_result=False, reject_on_worker_lost=False)(map_one)


def announce_in_redis(broker_url: str, queue: str, me: registry.TaskWorker) -> None:
    """Keeps `me` announced on `queue` in the broker's Redis until Celery's warm shutdown."""
    stop_announcing = threading.Event()
    try:
        announcing = registry.keep_announcing(
            redis.Redis.from_url(broker_url), queue, me, stop_announcing
        )
    except redis.RedisError as error:
        sys.exit(
            f"nogil-bench task-worker: the broker at {maybe_sanitize_url(broker_url)} "
            f"does not answer: {error}"
        )

    @signals.worker_shutting_down.connect(weak=False)
    def _withdraw(**_: object) -> None:
        stop_announcing.set()
        announcing.join(timeout=5)


def main(pool: str, concurrency: int, argv: Sequence[str] = ()) -> None:
    """Runs a task worker on `pool`'s queue until SIGTERM or SIGINT."""
    settings = get_settings()
    configure_logging(settings)
    if settings.BROKER_URL is None:
        sys.exit(
            "nogil-bench task-worker: set NOGIL_BENCH_BROKER_URL (redis://host:port/db or "
            "amqp://user:password@host:port/vhost)"
        )
    taken = [arg for arg in argv if sets_option(arg, OWN_OPTIONS)]
    if taken:
        sys.exit(
            f"nogil-bench task-worker: {' '.join(taken)}: set by task-worker itself (--pool, "
            "--concurrency), since it announces them to the celery runners"
        )
    try:
        signing_key(settings)
        check_gil_off()
    except (ValueError, GilEnabledError) as error:
        sys.exit(f"nogil-bench task-worker: {error}")
    name = settings.WORKER_NAME or runtime.process_name(f"tasks-{pool}")
    logger.info(
        "task worker {} (pid {}, {} x{}) on Python {}, GIL enabled: {}",
        name,
        os.getpid(),
        pool,
        concurrency,
        runtime.python_version(),
        runtime.is_gil_enabled(),
    )
    if settings.LOG_LEVEL not in {"TRACE", "DEBUG"}:
        # A line per task received and per task done, hundreds a second: only when debugging.
        for per_task in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(per_task).setLevel(logging.WARNING)
    celery = make_celery(settings)
    register_map_task(celery)
    hostname = name.replace(":", "-")
    me = registry.TaskWorker(hostname, pool, concurrency, runtime.is_gil_enabled(), os.getpid())
    if settings.broker_kind == "redis":
        announce_in_redis(settings.BROKER_URL, TASK_QUEUES[pool], me)
    else:
        registry.answer_broadcasts(TASK_QUEUES[pool], me)

    run_celery_worker(
        celery,
        [
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--queues",
            TASK_QUEUES[pool],
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            CELERY_LOG_LEVELS.get(settings.LOG_LEVEL, settings.LOG_LEVEL),
            *argv,
        ],
    )
