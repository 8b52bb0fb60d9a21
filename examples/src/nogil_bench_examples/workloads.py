"""The examples as nogil-bench workloads, registered in this package's pyproject.toml under
`nogil_bench.workloads`, as any package registers its own:

    nogil-bench measure --list
    nogil-bench measure examples-pure examples-hash examples-contended --quick
    nogil-bench measure examples-hash --param mebibytes=64 --runners threads processes

Each parameters class is what `--param` sets (and the API's JSON schema): every field has a
default, and its bounds are checked before anything runs.
"""

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Le

from nogil_bench.workloads.plugin import FunctionWorkload
from nogil_bench_examples.tasks import (
    HashJob,
    NumberRange,
    TallyJob,
    longest_collatz,
    sha256_of_generated,
    tally_words,
)


@dataclass(frozen=True, slots=True)
class PureParams:
    """`tasks` ranges of `span` consecutive numbers, from 1 on."""

    tasks: Annotated[int, Ge(1), Le(1024)] = 16
    span: Annotated[int, Ge(1), Le(1_000_000)] = 2_000


def number_ranges(params: PureParams) -> list[NumberRange]:
    return [NumberRange(1 + index * params.span, params.span) for index in range(params.tasks)]


PURE = FunctionWorkload(
    function=longest_collatz,
    tasks=number_ranges,
    params=PureParams,
    description="longest Collatz chain per range of numbers, pure Python: parallel only with "
    "the GIL off",
    quick={"tasks": 8, "span": 1_000},
)


@dataclass(frozen=True, slots=True)
class HashParams:
    """`tasks` SHA-256 digests of `mebibytes` MiB each."""

    tasks: Annotated[int, Ge(1), Le(1024)] = 16
    mebibytes: Annotated[int, Ge(1), Le(1024)] = 32


def hash_jobs(params: HashParams) -> list[HashJob]:
    return [HashJob(seed, params.mebibytes) for seed in range(params.tasks)]


HASH = FunctionWorkload(
    function=sha256_of_generated,
    tasks=hash_jobs,
    params=HashParams,
    description="SHA-256 over MiB-sized buffers, in C that releases the GIL: parallel with the "
    "GIL on or off",
    quick={"tasks": 8, "mebibytes": 8},
)


@dataclass(frozen=True, slots=True)
class ContendedParams:
    """`tasks` tasks of `updates` locked updates each to one shared tally."""

    tasks: Annotated[int, Ge(1), Le(1024)] = 16
    updates: Annotated[int, Ge(1), Le(10_000_000)] = 30_000


def tally_jobs(params: ContendedParams) -> list[TallyJob]:
    return [TallyJob(seed, params.updates) for seed in range(params.tasks)]


CONTENDED = FunctionWorkload(
    function=tally_words,
    tasks=tally_jobs,
    params=ContendedParams,
    description="every task updates one shared tally under one lock: threads contend, while "
    "processes and subinterpreters each update a tally of their own",
    quick={"tasks": 8, "updates": 10_000},
)
