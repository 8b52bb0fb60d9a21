"""The three examples' task functions: one argument in, one result out, per call.

Standard library only, and nothing from nogil_bench: a subinterpreter (the `interpreters`
runner) imports this module to unpickle the functions, and a module that pulled in pydantic,
or an extension without subinterpreter support, would keep the examples off that runner.
"""

import hashlib
import threading
from collections import Counter
from typing import NamedTuple

CHUNK_BYTES = 1 << 20  # hashlib releases the GIL while it hashes a buffer this large


class NumberRange(NamedTuple):
    start: int
    span: int


def longest_collatz(numbers: NumberRange) -> tuple[int, int]:
    """The number in the range with the longest Collatz chain, and that chain's length:
    integer arithmetic in a loop, all of it bytecode, so it holds the GIL throughout."""
    best, best_steps = numbers.start, -1
    for number in range(numbers.start, numbers.start + numbers.span):
        steps, value = 0, number
        while value > 1:
            value = value // 2 if value % 2 == 0 else 3 * value + 1
            steps += 1
        if steps > best_steps:
            best, best_steps = number, steps
    return best, best_steps


class HashJob(NamedTuple):
    seed: int
    mebibytes: int


def sha256_of_generated(job: HashJob) -> str:
    """SHA-256 of `mebibytes` MiB generated from the seed. Making the chunk is one C call and
    hashing it is another that releases the GIL, so threads hash in parallel with the GIL on."""
    chunk = job.seed.to_bytes(8, "little") * (CHUNK_BYTES // 8)
    digest = hashlib.sha256()
    for _ in range(job.mebibytes):
        digest.update(chunk)
    return digest.hexdigest()


class TallyJob(NamedTuple):
    seed: int
    updates: int


WORDS = tuple(f"word{index}" for index in range(64))
# One tally for the whole process, as a metrics registry or a cache would be: every thread
# updates it, under one lock. A process or a subinterpreter has a tally of its own.
_TALLY: Counter[str] = Counter()
_TALLY_LOCK = threading.Lock()


def tally_words(job: TallyJob) -> int:
    """Counts `updates` words into the shared tally, one locked update each, and returns the
    sum of their positions in WORDS: what the task did, the same whatever the interleaving
    (the tally itself depends on which tasks ran here before)."""
    recorded = 0
    for step in range(job.updates):
        position = (job.seed + 7 * step) % len(WORDS)
        with _TALLY_LOCK:
            _TALLY[WORDS[position]] += 1
        recorded += position
    return recorded


def tally_total() -> int:
    """How many words the shared tally holds, counted in this process or interpreter."""
    with _TALLY_LOCK:
        return _TALLY.total()
