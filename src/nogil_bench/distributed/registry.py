"""Which task workers serve each celery runner's queue: each announces itself in Redis.

A task worker keeps a key per queue it consumes, with its pool kind, concurrency and GIL
state, renewed every few seconds under a short expiry, and deletes it on a warm shutdown; a
worker killed outright drops out when its key expires. The celery runners read these keys
instead of Celery's `inspect` broadcast, which a busy or just-started worker does not answer.
"""

import json
import threading
from dataclasses import asdict, dataclass

import redis

PREFIX = "nogil-bench:task-workers"
EXPIRES_S = 15
RENEW_EVERY_S = 5


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
