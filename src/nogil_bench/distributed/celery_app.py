"""The Celery application both sides share: its broker, queues and delivery guarantees."""

from celery import Celery
from kombu import Exchange, Queue

from nogil_bench.core.config import Settings
from nogil_bench.work.registry import WORK_QUEUES

# Where the service puts its work: a queue per kind of worker (`WorkKind.queue`: single jobs
# and batch chunks in one, benchmarks in another); one execution per worker at a time.
WORK_QUEUE_PREFIX = "nogil-bench."
# Where what a worker would not run goes, a queue of dead letters per work queue
# (distributed/dead_letters.py).
DEAD_EXCHANGE = "nogil-bench.dead"
# The tasks on them: (kind of work, id), or (kind, id, the part's row ids); see
# core.work.Delivery.
RUN_TASK = "nogil_bench.run"
# The celery runners' tasks: one queue per pool kind, apart from the executions, so that an
# execution whose runner is a celery runner never waits behind itself.
TASK_QUEUES = {"threads": "nogil-bench.tasks.threads", "prefork": "nogil-bench.tasks.prefork"}
MAP_TASK = "nogil_bench.map"
# How long the celery runners' results stay in Redis if their caller never collects them.
RESULT_EXPIRES_S = 3600


def work_queue(queue: str) -> str:
    """The broker's name for a `WorkKind.queue`, e.g. "nogil-bench.jobs"."""
    return f"{WORK_QUEUE_PREFIX}{queue}"


def dead_queue(queue: str) -> str:
    """The broker's name of a work queue's dead letters, e.g. "nogil-bench.jobs.dead"."""
    return f"{work_queue(queue)}.dead"


def work_queues() -> list[Queue]:
    """The work queues as Celery declares them (as it would a missing one: a direct exchange
    of the queue's name), with their dead-letter exchange. Redis ignores the arguments."""
    return [
        Queue(
            work_queue(queue),
            Exchange(work_queue(queue), type="direct"),
            routing_key=work_queue(queue),
            queue_arguments={
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": dead_queue(queue),
            },
        )
        for queue in WORK_QUEUES
    ]


def dead_queues() -> list[Queue]:
    exchange = Exchange(DEAD_EXCHANGE, type="direct")
    return [Queue(dead_queue(q), exchange, routing_key=dead_queue(q)) for q in WORK_QUEUES]


def make_celery(settings: Settings) -> Celery:
    """The Celery app for `settings.BROKER_URL`. Tasks are acknowledged after they ran
    (`acks_late`), and given back when their worker dies (`task_reject_on_worker_lost`); the
    broker hands an unacknowledged task out again after its visibility timeout, which is set
    above the longest execution. A worker reserves one task at a time, so that queued work
    spreads over idle workers instead of waiting behind a busy one. Only the celery runners'
    tasks keep results: in the broker's Redis, or on RabbitMQ in a reply queue of the caller's
    (`rpc://`); executions report through the database. RabbitMQ confirms each publish, so a
    task the dispatcher counts as sent is the broker's; an unacknowledged task comes back when
    its worker's connection closes."""
    if settings.BROKER_URL is None:
        raise ValueError("no NOGIL_BENCH_BROKER_URL set: the service runs its queue itself")
    app = Celery("nogil_bench", broker=settings.BROKER_URL, set_as_current=False)
    redis = settings.broker_kind == "redis"
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=settings.BROKER_URL if redis else "rpc://",
        result_serializer="json",
        result_expires=RESULT_EXPIRES_S,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=work_queue("jobs"),
        task_queues=work_queues(),
        broker_transport_options=(
            {"visibility_timeout": settings.broker_visibility_timeout_s}
            if redis
            else {"confirm_publish": True}
        ),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
