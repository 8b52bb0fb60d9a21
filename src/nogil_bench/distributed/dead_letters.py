"""Dead letters: the tasks a worker would not run, kept for an operator instead of dropped.

A task lands here when a worker rejects it (its body does not decode, it names a task this
version does not have, its headers or arguments are not a delivery this version sends), or
when it failed on its last attempt (an error outside the work's own handling, such as a
database that stayed down through MAX_ATTEMPTS tries). Each queue of work has its own
dead-letter queue, "<queue>.dead":

- on RabbitMQ, through a dead-letter exchange: every work queue is declared with
  `x-dead-letter-exchange`, so whatever a consumer rejects (`requeue=False`), Celery's own
  rejections included, goes there with the broker's `x-death` header (which queue, when, how
  often);
- on Redis, which has no such thing, the worker pushes the message, as the transport keeps it,
  onto a list of that name, with an `x-nogil-bench-death` header saying why, from which queue
  and when.

`list_dead` shows them, `requeue` sends them back to their queue (`nogil-bench dead-letters
list|requeue`, GET /api/v1/admin/dead-letters). A requeued task still runs at most once to
completion: a worker runs only work still queued in the database, so a second delivery, or a
requeued copy of work that ran meanwhile, is skipped.
"""

import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from amqp import Message as AmqpMessage
from celery import Celery
from celery.worker.consumer import Consumer
from kombu.message import Message
from loguru import logger

from nogil_bench.core import metrics
from nogil_bench.core.config import BrokerKind, get_settings
from nogil_bench.core.logging import configure_logging
from nogil_bench.distributed.broker import BROKER_TIMEOUT_S, TIMEOUT_OPTIONS
from nogil_bench.distributed.celery_app import (
    dead_queue,
    dead_queues,
    make_celery,
    work_queue,
)
from nogil_bench.work.registry import WORK_QUEUES, queues_from

# On Redis: why a worker kept the message ({"reason", "detail", "queue", "at"}).
DEATH_HEADER = "x-nogil-bench-death"
# How many dead letters a listing shows, unless asked for fewer.
LIST_LIMIT = 100
# Moves a dead letter back to its queue on Redis, atomically: only if it is still there (two
# operators requeueing at once send it once).
REDIS_MOVE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[2])
    return 1
end
return 0
"""


def declare(celery: Celery, kind: BrokerKind) -> None:
    """On RabbitMQ: the dead-letter exchange and queues, so that nothing dead-lettered before
    a listing is dropped for want of them. Redis makes its lists on the first push."""
    if kind != "amqp":
        return
    with celery.connection_for_write(transport_options=TIMEOUT_OPTIONS[kind]) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        channel = connection.default_channel
        for queue in dead_queues():
            queue.bind(channel).declare()


def origin_of(delivery_info: Mapping[str, object] | None) -> str | None:
    """The work queue (jobs, benchmarks) a message was delivered from, or None for the
    other queues (the celery runners' tasks are not kept)."""
    routing_key = (delivery_info or {}).get("routing_key")
    for queue in WORK_QUEUES:
        if routing_key == work_queue(queue):
            return queue
    return None


def death(reason: str, detail: str, queue: str) -> dict[str, str]:
    return {"reason": reason, "detail": detail, "queue": queue, "at": datetime.now(UTC).isoformat()}


def push_on_redis(celery: Celery, queue: str, payload: dict[str, Any]) -> None:
    """Pushes a message, as kombu's Redis transport keeps it, onto `queue`'s dead letters."""
    with celery.connection_for_write(transport_options=TIMEOUT_OPTIONS["redis"]) as connection:
        client = connection.default_channel.client  # type: ignore[attr-defined]
        client.lpush(dead_queue(queue), json.dumps(payload))


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, keeping what it rejects from a work queue as a dead letter, and
    rejecting (rather than acknowledging) what does not decode, so that RabbitMQ keeps it
    too. Celery's worker takes it by `worker_consumer`."""

    # For Celery's `worker_consumer` setting.
    path: ClassVar[str] = f"{__name__}:DeadLetteringConsumer"

    def on_redis(self) -> bool:
        return self.connection is not None and self.connection.transport.driver_type == "redis"

    def keep(self, message: Message, reason: str, error: object) -> bool:
        """Keeps `message` as a dead letter if it came from a work queue; True when kept
        (Redis: pushed, then acknowledged; RabbitMQ: rejected into the dead-letter
        exchange)."""
        queue = origin_of(message.delivery_info)
        if queue is None:
            return False
        metrics.TASKS_DEAD_LETTERED.labels("unknown", reason).inc()
        logger.error("task kept as a dead letter ({}) from {}: {}", reason, queue, error)
        if self.on_redis():
            payload = message.serializable()  # type: ignore[attr-defined]
            payload["headers"][DEATH_HEADER] = death(reason, str(error), queue)
            try:
                push_on_redis(self.app, queue, payload)
            except Exception:  # the broker is failing: the consumer must go on all the same
                logger.exception("could not keep the dead letter from {}", queue)
        return True

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        if not self.keep(message, "undecodable", exc):
            super().on_decode_error(message, exc)
        elif self.on_redis():
            message.ack()
        else:
            message.reject(requeue=False)

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        self.keep(message, "unknown_task", exc)
        super().on_unknown_task(body, message, exc)  # rejects it: RabbitMQ dead-letters it

    def on_unknown_message(self, body: Any, message: Message) -> None:
        self.keep(message, "invalid", "not a Celery task message")
        super().on_unknown_message(body, message)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        self.keep(message, "invalid", exc)
        super().on_invalid_task(body, message, exc)


@dataclass(frozen=True)
class DeadLetter:
    """A task kept in a dead-letter queue, as an operator sees it."""

    id: str | None  # Celery's task id
    queue: str  # the work queue it came from: jobs, benchmarks
    task: str | None  # the task's name (nogil_bench.run, unless it was not one of ours)
    args: list[Any] | None  # its arguments (kind of work, id[, part]), when they decode
    reason: str  # why: see metrics.DEAD_LETTER_REASONS; "rejected" as RabbitMQ says it
    detail: str | None  # Redis: the error; RabbitMQ: in the worker's log only
    dead_at: datetime | None
    deaths: int = 1  # how often it was dead-lettered (RabbitMQ counts)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def decoded_args(body: bytes | str, content_type: str | None) -> list[Any] | None:
    """A Celery protocol-2 body's positional arguments, when it is JSON of that shape."""
    if content_type != "application/json":
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], list):
        return decoded[0]
    return None


def from_redis(queue: str, raw: str) -> DeadLetter:
    try:
        payload = json.loads(raw)
    except ValueError:  # not pushed by a worker: shown for what it is, with no fields
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    headers = payload.get("headers") or {}
    why = headers.get(DEATH_HEADER) or {}
    body = payload.get("body", "")
    if payload.get("properties", {}).get("body_encoding") == "base64":
        try:
            body = base64.b64decode(body)
        except ValueError:
            body = b""
    return DeadLetter(
        id=headers.get("id"),
        queue=queue,
        task=headers.get("task"),
        args=decoded_args(body, payload.get("content-type")),
        reason=why.get("reason", "unknown"),
        detail=why.get("detail"),
        dead_at=datetime.fromisoformat(why["at"]) if "at" in why else None,
        raw={"text": raw, "payload": payload},
    )


def from_amqp(queue: str, message: Any) -> DeadLetter:
    """From a py-amqp message got from a dead-letter queue."""
    headers = message.properties.get("application_headers") or {}
    deaths = headers.get("x-death") or [{}]
    last = deaths[0]
    dead_at = last.get("time")
    return DeadLetter(
        id=headers.get("id"),
        queue=queue,
        task=headers.get("task"),
        args=decoded_args(message.body, message.properties.get("content_type")),
        reason=str(last.get("reason", "rejected")),
        detail=None,
        dead_at=dead_at.replace(tzinfo=UTC) if isinstance(dead_at, datetime) else None,
        deaths=int(last.get("count", 1)),
        raw={"message": message},
    )


def list_dead(
    celery: Celery, kind: BrokerKind, queues: Sequence[str], limit: int = LIST_LIMIT
) -> list[DeadLetter]:
    """Up to `limit` dead letters of each of `queues` (jobs, benchmarks), oldest first,
    left where they are. On RabbitMQ, they are got unacknowledged and given back when the
    channel closes (they then count as redelivered)."""
    with celery.connection_for_read(transport_options=TIMEOUT_OPTIONS[kind]) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        if kind == "redis":
            client = connection.default_channel.client  # type: ignore[attr-defined]
            found: list[DeadLetter] = []
            for queue in queues:
                # Pushed on the left: the oldest are on the right.
                raws = client.lrange(dead_queue(queue), -limit, -1)
                found += [from_redis(queue, raw) for raw in reversed(raws)]
            return found
        return [letter for queue in queues for letter in got_from_amqp(connection, queue, limit)]


def got_from_amqp(connection: Any, queue: str, limit: int) -> list[DeadLetter]:
    channel = connection.channel()
    try:
        for dead in dead_queues():
            dead.bind(channel).declare()
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            message = channel.basic_get(dead_queue(queue), no_ack=False)
            if message is None:
                break
            letters.append(from_amqp(queue, message))
        return letters
    finally:
        channel.close()  # what was got and not acknowledged goes back, in its order


def requeue(
    celery: Celery, kind: BrokerKind, queues: Sequence[str], ids: Iterable[str] | None
) -> list[DeadLetter]:
    """Sends the dead letters of `queues` back to the queue they came from: those whose task
    id is in `ids`, or all when `ids` is None. Returns those sent."""
    wanted = None if ids is None else set(ids)
    with celery.connection_for_write(transport_options=TIMEOUT_OPTIONS[kind]) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        if kind == "redis":
            return requeue_on_redis(connection, queues, wanted)
        return [letter for queue in queues for letter in requeue_on_amqp(connection, queue, wanted)]


def requeue_on_redis(
    connection: Any, queues: Sequence[str], wanted: set[str] | None
) -> list[DeadLetter]:
    client = connection.default_channel.client
    move = client.register_script(REDIS_MOVE)
    sent: list[DeadLetter] = []
    for queue in queues:
        for raw in reversed(client.lrange(dead_queue(queue), 0, -1)):  # oldest first
            letter = from_redis(queue, raw)
            if wanted is not None and letter.id not in wanted:
                continue
            # Back as it came: routed to its work queue again (a retry follows the route).
            payload = letter.raw["payload"]
            if "properties" not in payload:  # not a message the transport could read: stays
                continue
            payload["properties"]["delivery_info"] = {
                "exchange": work_queue(queue),
                "routing_key": work_queue(queue),
            }
            if move(keys=[dead_queue(queue), work_queue(queue)], args=[raw, json.dumps(payload)]):
                sent.append(letter)
    return sent


def requeue_on_amqp(connection: Any, queue: str, wanted: set[str] | None) -> list[DeadLetter]:
    """Gets every dead letter of `queue`; republishes the wanted ones to the work queue,
    each confirmed by the broker before its dead copy is acknowledged (a crash between the
    two leaves both: the task then runs once, as any task delivered twice)."""
    channel = connection.channel()
    sent: list[DeadLetter] = []
    try:
        for dead in dead_queues():
            dead.bind(channel).declare()
        while (message := channel.basic_get(dead_queue(queue), no_ack=False)) is not None:
            letter = from_amqp(queue, message)
            if wanted is not None and letter.id not in wanted:
                continue
            properties = dict(message.properties)
            headers = dict(properties.pop("application_headers", None) or {})
            headers.pop("x-death", None)
            headers.pop("x-first-death-exchange", None)
            headers.pop("x-first-death-queue", None)
            headers.pop("x-first-death-reason", None)
            headers.pop("x-last-death-exchange", None)
            headers.pop("x-last-death-queue", None)
            headers.pop("x-last-death-reason", None)
            channel.basic_publish_confirm(
                AmqpMessage(message.body, application_headers=headers, **properties),
                exchange="",
                routing_key=work_queue(queue),
                confirm_timeout=BROKER_TIMEOUT_S,
            )
            channel.basic_ack(message.delivery_tag)
            sent.append(letter)
        return sent
    finally:
        channel.close()


def described(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as the command's --json and the admin route show it."""
    return {
        "id": letter.id,
        "queue": letter.queue,
        "task": letter.task,
        "args": letter.args,
        "reason": letter.reason,
        "detail": letter.detail,
        "dead_at": letter.dead_at.isoformat() if letter.dead_at else None,
        "deaths": letter.deaths,
    }


def command(
    action: str, queues: str, *, limit: int, ids: Sequence[str], every: bool, as_json: bool
) -> int:
    """`nogil-bench dead-letters list|requeue`: exit 0, or 1 with why (no broker, a broker
    that does not answer, nothing to requeue named)."""
    settings = get_settings()
    configure_logging(settings)
    if settings.BROKER_URL is None or settings.broker_kind is None:
        print(
            "nogil-bench dead-letters: no NOGIL_BENCH_BROKER_URL set: without a broker the "
            "service runs its queue itself, and keeps no dead letters",
            file=sys.stderr,
        )
        return 1
    try:
        names = queues_from(queues)
    except ValueError as error:
        print(f"nogil-bench dead-letters: {error}", file=sys.stderr)
        return 1
    if action == "requeue" and every == bool(ids):
        print(
            "nogil-bench dead-letters requeue: name the task ids to requeue, or --all",
            file=sys.stderr,
        )
        return 1
    celery = make_celery(settings)
    try:
        if action == "list":
            letters = list_dead(celery, settings.broker_kind, names, limit)
        else:
            letters = requeue(celery, settings.broker_kind, names, None if every else ids)
    except Exception as error:  # any transport error
        print(f"nogil-bench dead-letters: the broker does not answer: {error}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps([described(letter) for letter in letters], indent=2))
    elif action == "list":
        for letter in letters:
            when = letter.dead_at.isoformat(timespec="seconds") if letter.dead_at else "?"
            print(
                f"{letter.id}  {letter.queue}  {when}  {letter.reason}  {letter.task} "
                f"{letter.args}  {letter.detail or ''}".rstrip()
            )
        print(f"{len(letters)} dead letter(s) in {', '.join(names)}", file=sys.stderr)
    else:
        for letter in letters:
            print(f"requeued {letter.id} to {letter.queue}")
        if missing := set(ids) - {letter.id for letter in letters}:
            print(f"not found: {', '.join(sorted(missing))}", file=sys.stderr)
            return 1
    return 0
