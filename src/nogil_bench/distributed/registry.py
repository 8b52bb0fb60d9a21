"""Which task workers serve each celery runner's queue: each announces itself.

On Redis, a task worker keeps a key per queue it consumes, with its pool kind, concurrency
and GIL state, renewed every few seconds under a short expiry, and deletes it on a warm
shutdown; a worker killed outright drops out when its key expires. The celery runners read
these keys instead of Celery's `inspect` broadcast, which a busy or just-started worker does
not answer.

RabbitMQ keeps no keys: there, the runners ask by broadcast (ANSWER_COMMAND, a remote control
command of the task workers'), and wait BROADCAST_WAIT_S for the answers. A thread-pool or
prefork worker answers from its consumer, which stays free while its pool works; one that has
not finished starting is not counted, and the runner says so.
"""

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

import redis
from celery import Celery
from celery.worker.control import inspect_command

PREFIX = "nogil-bench:task-workers"
EXPIRES_S = 15
RENEW_EVERY_S = 5
ANSWER_COMMAND = "nogil_bench_task_worker"
BROADCAST_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class TaskWorker:
    hostname: str
    pool: str  # "threads" | "prefork"
    concurrency: int
    gil: bool
    pid: int


def key(queue: str, hostname: str) -> str:
    return f"{PREFIX}:{queue}:{hostname}"


def announce(client: redis.Redis, queue: str, worker: TaskWorker) -> None:
    client.set(key(queue, worker.hostname), json.dumps(asdict(worker)), ex=EXPIRES_S)


def withdraw(client: redis.Redis, queue: str, hostname: str) -> None:
    client.delete(key(queue, hostname))


def keep_announcing(
    client: redis.Redis, queue: str, worker: TaskWorker, stop: threading.Event
) -> threading.Thread:
    """Announces `worker` now and every RENEW_EVERY_S seconds on a daemon thread until `stop`
    is set, then withdraws it."""
    announce(client, queue, worker)

    def renew() -> None:
        while not stop.wait(RENEW_EVERY_S):
            try:
                announce(client, queue, worker)
            except redis.RedisError:
                continue  # the broker is away; the key comes back with it
        withdraw(client, queue, worker.hostname)

    thread = threading.Thread(target=renew, name="nogil-bench-announce", daemon=True)
    thread.start()
    return thread


def task_workers(client: redis.Redis, queue: str) -> list[TaskWorker]:
    """The workers announced on `queue`, by hostname."""
    keys = sorted(client.scan_iter(match=f"{PREFIX}:{queue}:*"))
    values = client.mget(keys) if keys else []
    return [TaskWorker(**json.loads(value)) for value in values if value is not None]


def answer_broadcasts(queue: str, worker: TaskWorker) -> None:
    """Makes this process's Celery worker answer ANSWER_COMMAND with `worker` on `queue`."""

    @inspect_command(name=ANSWER_COMMAND)
    def _answer(state: object, **_: object) -> dict[str, Any]:
        return {"queue": queue, "worker": asdict(worker)}


def broadcast_task_workers(celery: Celery, queue: str) -> list[TaskWorker]:
    """The workers that answer ANSWER_COMMAND within BROADCAST_WAIT_S for `queue`, by
    hostname."""
    replies = celery.control.broadcast(ANSWER_COMMAND, reply=True, timeout=BROADCAST_WAIT_S)
    found = [
        TaskWorker(**answer["worker"])
        for reply in replies or []
        for answer in reply.values()
        if isinstance(answer, dict) and answer.get("queue") == queue
    ]
    return sorted(found, key=lambda worker: worker.hostname)
