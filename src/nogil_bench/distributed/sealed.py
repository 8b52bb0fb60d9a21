"""Python objects sealed for the broker: pickled, then signed with the service's secret key.

The celery runners send functions and their tasks to other processes, which only pickle can
carry; a worker that unpickled whatever reached its queue would run code for anyone who can
write to Redis. So every payload carries an HMAC-SHA256 under a key derived from SECRET_KEY,
checked before anything is unpickled, and results come back sealed the same way.

The signature also covers a label: what the seal is for (a task, or the reply to one), the
Celery task id it belongs to, and when it expires (the run's deadline). Someone who can write to
the broker, but holds no key, can therefore neither forge a payload nor replay a genuine one:
an old reply offered for another task, a task offered as a reply, or a task queued again after
its run gave up are each refused, before unpickling. Within its deadline, a task queued twice
with its own id runs twice; the runner takes the one reply it waits for.

The trust boundary is the key. Whoever holds it can seal anything, so every process given
SECRET_KEY is trusted with code execution in every other: a task worker runs the functions the
service sends, and the service unpickles the replies a task worker sends. Give the key only to
machines you would let run code in the service.
"""

import base64
import hashlib
import hmac
import json
import pickle
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

DIGEST = hashlib.sha256
SIGNATURE_BYTES = DIGEST().digest_size
LABEL_LENGTH_BYTES = 2

type Purpose = Literal["task", "reply"]


class ForgedPayloadError(ValueError):
    """The payload's signature does not match: another key sealed it, or it was altered."""


class MisdirectedSealError(ForgedPayloadError):
    """A genuine seal offered for another purpose or task than its own: a replay."""


class ExpiredSealError(ForgedPayloadError):
    """A genuine seal offered after its deadline: a replay, or a run that already gave up."""


@dataclass(frozen=True, slots=True)
class Label:
    """What a seal is for, signed with it and checked before the payload is unpickled."""

    purpose: Purpose
    task_id: str
    expires_at: float  # seconds since the epoch, as time.time()


class Opened(NamedTuple):
    value: Any
    label: Label


def seal(value: object, key: bytes, label: Label) -> str:
    """`value` pickled and signed with its label, as text a JSON message can carry."""
    header = json.dumps(asdict(label)).encode()
    signed = (
        len(header).to_bytes(LABEL_LENGTH_BYTES, "big")
        + header
        + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    )
    return base64.b64encode(hmac.digest(key, signed, DIGEST) + signed).decode("ascii")


def unseal(
    text: str, key: bytes, *, purpose: Purpose, task_id: str, received_at: float | None = None
) -> Opened:
    """The value `seal` was given, with its label; before unpickling, ForgedPayloadError if it
    was not sealed with `key`, or a subclass if it was sealed for another purpose or task than
    `purpose` and `task_id` (MisdirectedSealError) or its deadline had passed when it was
    received (`received_at`, default now: ExpiredSealError)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise ForgedPayloadError(f"not a sealed payload: {error}") from None
    signature, signed = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
    if len(signature) < SIGNATURE_BYTES or not hmac.compare_digest(
        signature, hmac.digest(key, signed, DIGEST)
    ):
        raise ForgedPayloadError(
            "the payload's signature does not match: the sender and this process must share "
            "NOGIL_BENCH_SECRET_KEY and run the same version of nogil-bench"
        )
    length = int.from_bytes(signed[:LABEL_LENGTH_BYTES], "big")
    label = Label(**json.loads(signed[LABEL_LENGTH_BYTES : LABEL_LENGTH_BYTES + length]))
    if label.purpose != purpose:
        raise MisdirectedSealError(
            f"a {label.purpose} seal was offered as a {purpose}: refused as a replay"
        )
    if label.task_id != task_id:
        raise MisdirectedSealError(
            f"a {purpose} sealed for task {label.task_id} was offered for task {task_id}: "
            "refused as a replay"
        )
    if (late_s := (received_at or time.time()) - label.expires_at) > 0:
        raise ExpiredSealError(
            f"the {purpose} for task {task_id} expired {late_s:.1f} s ago (its run's deadline, "
            "EXECUTION_TIMEOUT_SECONDS after it was sent): refused as a replay or a late answer"
        )
    data = signed[LABEL_LENGTH_BYTES + length :]
    return Opened(pickle.loads(data), label)  # noqa: S301 - signed with our own key, checked above
