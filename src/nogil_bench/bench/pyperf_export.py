"""Measurements written as a pyperf benchmark suite, so that pyperf's own tools read them.

`python -m pyperf stats FILE` and `python -m pyperf compare_to A B` then summarise and compare our
runs with statistics the Python performance community already trusts, including its "not
significant" verdict where two runs do not really differ. The document is built with pyperf's own
classes rather than written by hand, so its format and metadata checks are pyperf's.
"""

import gzip
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyperf

from nogil_bench.core.files import write_atomically

type MetadataValue = str | int | float

UNIT = "second"
# pyperf takes these from the benchmark itself; a caller's value would contradict it.
OWNED_METADATA_KEYS = frozenset({"name", "unit"})
NO_METADATA: Mapping[str, MetadataValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PyperfBenchmark:
    """One configuration's measurements, in wall seconds.

    `values` are the measured rounds, `blocks[i]` the block (fresh worker process) that measured
    values[i] (None: all in one); `warmups` the rounds run first and discarded (possibly none),
    kept because pyperf reports them apart. `metadata` describes the configuration (runner,
    workers, GIL...); pyperf checks the types of the keys it knows, such as `loops` (an int >= 1).
    """

    name: str
    values: Sequence[float]
    warmups: Sequence[float]
    metadata: Mapping[str, MetadataValue]
    blocks: Sequence[int] | None = None


def pyperf_suite(
    benchmarks: Sequence[PyperfBenchmark],
    *,
    metadata: Mapping[str, MetadataValue] = NO_METADATA,
) -> dict[str, Any]:
    """The suite as pyperf's JSON document (format version "1.0"), as `pyperf dump` would write it.

    `metadata` applies to every benchmark (host, interpreter, date...); a benchmark's own metadata
    wins over it. pyperf's model is one run per fresh process, its values the measurements taken in
    that process; so is the engine's: each block of fresh worker processes becomes a pyperf run
    holding that block's rounds, the first run also holding the warmups (the engine reports the
    first block's). pyperf's spread then describes rounds and processes, as its own does.
    """
    document: dict[str, Any] = json.loads(_suite_json(benchmarks, metadata))
    return document


def write_pyperf_suite(
    path: Path,
    benchmarks: Sequence[PyperfBenchmark],
    *,
    metadata: Mapping[str, MetadataValue] = NO_METADATA,
) -> None:
    """Write `pyperf_suite` to `path`, gzip-compressed when it ends in .gz as pyperf expects."""
    content = _suite_json(benchmarks, metadata).encode()
    # mtime=0 keeps the file a function of the measurements alone.
    write_atomically(path, gzip.compress(content, mtime=0) if path.suffix == ".gz" else content)


def _suite_json(
    benchmarks: Sequence[PyperfBenchmark], suite_metadata: Mapping[str, MetadataValue]
) -> str:
    if not benchmarks:
        raise ValueError("no benchmarks to export: benchmarks is empty")
    duplicates = [name for name, count in Counter(b.name for b in benchmarks).items() if count > 1]
    if duplicates:
        raise ValueError(f"benchmark names must be unique; repeated: {', '.join(duplicates)}")
    if owned := sorted(OWNED_METADATA_KEYS & suite_metadata.keys()):
        raise ValueError(f"suite metadata may not set {', '.join(owned)}: the export sets them")
    suite = pyperf.BenchmarkSuite([_benchmark(b, suite_metadata) for b in benchmarks])
    buffer = io.StringIO()
    suite.dump(buffer)
    return buffer.getvalue()


def _benchmark(
    benchmark: PyperfBenchmark, suite_metadata: Mapping[str, MetadataValue]
) -> pyperf.Benchmark:
    if owned := sorted(OWNED_METADATA_KEYS & benchmark.metadata.keys()):
        keys = ", ".join(owned)
        raise ValueError(f"benchmark {benchmark.name!r}: metadata may not set {keys}")
    if not benchmark.values:
        raise ValueError(f"benchmark {benchmark.name!r} has no measured values")
    metadata = {**suite_metadata, **benchmark.metadata, "name": benchmark.name, "unit": UNIT}
    labels = benchmark.blocks if benchmark.blocks is not None else [0] * len(benchmark.values)
    if len(labels) != len(benchmark.values):
        raise ValueError(
            f"benchmark {benchmark.name!r}: {len(labels)} block labels for "
            f"{len(benchmark.values)} values"
        )
    by_block: dict[int, list[float]] = {}
    for value, block in zip(benchmark.values, labels, strict=True):
        by_block.setdefault(block, []).append(value)
    try:
        runs = [
            pyperf.Run(
                values,
                # Each warmup is one round of the workload: one loop, in pyperf's terms.
                warmups=[(1, warmup) for warmup in benchmark.warmups] if index == 0 else None,
                metadata=metadata,
                # The caller's metadata describes the measuring host; this process may be another.
                collect_metadata=False,
            )
            for index, values in enumerate(by_block.values())
        ]
    except ValueError as error:
        raise ValueError(f"benchmark {benchmark.name!r}: {error}") from error
    return pyperf.Benchmark(runs)
