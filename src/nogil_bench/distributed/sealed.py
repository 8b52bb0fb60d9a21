"""Python objects sealed for the broker: pickled, then signed with the service's secret key.

The celery runners send functions and their tasks to other processes, which only pickle can
carry; a worker that unpickled whatever reached its queue would run code for anyone who can
write to Redis. So every payload carries an HMAC-SHA256 of its bytes under SECRET_KEY, checked
before anything is unpickled, and results come back sealed the same way.
"""

import base64
import hashlib
import hmac
import pickle
from typing import Any

DIGEST = hashlib.sha256
SIGNATURE_BYTES = DIGEST().digest_size


class ForgedPayloadError(ValueError):
    """The payload's signature does not match: another key sealed it, or it was altered."""


def seal(value: object, key: bytes) -> str:
    """`value` pickled and signed, as text a JSON message can carry."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return base64.b64encode(hmac.digest(key, data, DIGEST) + data).decode("ascii")


def unseal(text: str, key: bytes) -> Any:
    """The value `seal` was given; ForgedPayloadError before unpickling if it was not sealed
    with `key`."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise ForgedPayloadError(f"not a sealed payload: {error}") from None
    signature, data = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
    if len(signature) < SIGNATURE_BYTES or not hmac.compare_digest(
        signature, hmac.digest(key, data, DIGEST)
    ):
        raise ForgedPayloadError(
            "the payload's signature does not match: the sender and this process must share "
            "NOGIL_BENCH_SECRET_KEY"
        )
    return pickle.loads(data)  # noqa: S301 - signed with our own key, checked above
