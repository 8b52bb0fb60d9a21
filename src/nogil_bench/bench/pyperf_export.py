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

    `values` are the measured rounds; `warmups` the rounds run first and discarded (possibly
    none), kept because pyperf reports them apart. `metadata` describes the configuration (runner,
    workers, GIL...); pyperf checks the types of the keys it knows, such as `loops` (an int >= 1).
    """

    name: str
    values: Sequence[float]
    warmups: Sequence[float]
    metadata: Mapping[str, MetadataValue]


def pyperf_suite(
    benchmarks: Sequence[PyperfBenchmark],
    *,
    metadata: Mapping[str, MetadataValue] = NO_METADATA,
) -> dict[str, Any]:
    """The suite as pyperf's JSON document (format version "1.0"), as `pyperf dump` would write it.

    `metadata` applies to every benchmark (host, interpreter, date...); a benchmark's own metadata
    wins over it. pyperf's model is one run per fresh process, its values the measurements taken in
    that process; our engine measures several rounds in one persistent worker per configuration,
    so each benchmark becomes a single run holding all of its rounds and warmups. pyperf's spread
    then describes rounds within one process, not the variation between processes.
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
    try:
        run = pyperf.Run(
            list(benchmark.values),
            # Each warmup is one round of the workload: one loop, in pyperf's terms.
            warmups=[(1, warmup) for warmup in benchmark.warmups],
            metadata=metadata,
            # The caller's metadata describes the measuring host; this process may be another.
            collect_metadata=False,
        )
    except ValueError as error:
        raise ValueError(f"benchmark {benchmark.name!r}: {error}") from error
    return pyperf.Benchmark([run])
