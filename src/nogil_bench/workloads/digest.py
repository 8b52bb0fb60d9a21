"""Digests of task results, taken where the task ran: only 32 bytes cross back to the caller,
and results are compared across runners (and GIL modes) without keeping them.

Pure standard library, so that subinterpreters can import it.
"""

import hashlib
import pickle
from collections.abc import Callable, Sequence

_SCALARS = (int, float, complex, bool, type(None))


def digest_of(value: object) -> bytes:
    """The SHA-256 of a result, equal for equal results in any process: sets, frozensets and
    dicts are digested in a sorted order, since their order may follow string hashing, which
    each process seeds differently (a dict built from a set is ordered as the set was). Other
    objects are digested by their pickle."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.digest()


def _feed(digest: hashlib._Hash, value: object) -> None:
    match value:
        case bytes() | bytearray() | memoryview():
            digest.update(b"b%d:" % len(value))
            digest.update(value)
        case str():
            encoded = value.encode("utf-8", "surrogatepass")
            digest.update(b"s%d:" % len(encoded))
            digest.update(encoded)
        case _ if isinstance(value, _SCALARS):
            digest.update(f"{type(value).__name__}:{value!r};".encode())
        case list() | tuple():
            digest.update(b"%s%d:" % (type(value).__name__.encode(), len(value)))
            for item in value:
                _feed(digest, item)
        case dict():
            digest.update(b"d%d:" % len(value))
            for pair_digest in sorted(digest_of(pair) for pair in value.items()):
                digest.update(pair_digest)
        case set() | frozenset():
            digest.update(b"S%d:" % len(value))
            for item_digest in sorted(digest_of(item) for item in value):
                digest.update(item_digest)
        case _:
            digest.update(b"p:")
            digest.update(pickle.dumps(value, protocol=5))


class DigestCall[T]:
    """Wraps a task function so that its worker returns the result's digest, not the result."""

    def __init__(self, fn: Callable[[T], object]) -> None:
        self.fn = fn

    def __call__(self, task: T) -> bytes:
        return digest_of(self.fn(task))


def combine_digests(hashes: Sequence[bytes]) -> str:
    """One run's digest from its outputs' own SHA-256s, in order."""
    combined = hashlib.sha256()
    for output_hash in hashes:
        combined.update(output_hash)
    return combined.hexdigest()
