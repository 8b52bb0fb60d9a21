"""What differs between the two brokers the service speaks, Redis and RabbitMQ: how long a
probe or a publish may wait for them, and how to read a queue's length."""

from collections.abc import Iterable
from typing import Any

from amqp.exceptions import NotFound
from celery import Celery

from nogil_bench.core.config import BrokerKind

# How long the service waits for the broker, in a probe (readiness, metrics) or a publish.
BROKER_TIMEOUT_S = 2
# Connections that give up after BROKER_TIMEOUT_S, to connect or for each reply: by default
# they wait forever on a broker that accepts connections but does not answer. On RabbitMQ,
# the reply includes the publish's confirmation.
TIMEOUT_OPTIONS: dict[BrokerKind, dict[str, Any]] = {
    "redis": {"socket_timeout": BROKER_TIMEOUT_S, "socket_connect_timeout": BROKER_TIMEOUT_S},
    "amqp": {
        "connect_timeout": BROKER_TIMEOUT_S,
        "read_timeout": BROKER_TIMEOUT_S,
        "write_timeout": BROKER_TIMEOUT_S,
    },
}


def queue_lengths(celery: Celery, kind: BrokerKind, queues: Iterable[str]) -> dict[str, int]:
    """Tasks waiting in each of `queues` (not those a worker holds unacknowledged): Redis keeps
    a queue as a list; RabbitMQ tells a queue's length to a passive declare. A queue nobody
    declared yet is empty."""
    with celery.connection_for_read(transport_options=TIMEOUT_OPTIONS[kind]) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        if kind == "redis":
            client = connection.default_channel.client  # type: ignore[attr-defined]
            return {queue: int(client.llen(queue)) for queue in queues}
        lengths: dict[str, int] = {}
        for queue in queues:
            # A passive declare of a missing queue closes its channel: one channel each.
            channel: Any = connection.channel()  # an amqp.Channel (kombu types it loosely)
            try:
                lengths[queue] = int(channel.queue_declare(queue, passive=True).message_count)
            except NotFound:
                lengths[queue] = 0
            finally:
                channel.close()
        return lengths
