"""A benchmark's report as a page (`GET /api/v1/benchmarks/{id}/report`, and shared links):
the page `nogil-bench measure --html` writes, drawn from the engine's document the benchmark
stored; before results exist, its status and progress."""

import json

from nogil_bench.bench.document import DocumentFormatError, from_json
from nogil_bench.bench.progress import Progress
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import BenchmarkSpec
from nogil_bench.benchmarks.service import request_body, what_is_measured
from nogil_bench.core.models import Status
from nogil_bench.reports.measurement import Reproduce, measurement_page, status_page


def benchmark_page(benchmark: Benchmark, *, shared: bool) -> str:
    """The report of a finished benchmark; the status (and progress) of any other. A shared
    page names neither the owner nor the paths on the measuring host."""
    spec = BenchmarkSpec.model_validate(benchmark.spec)
    title = f"{what_is_measured(spec)}: which concurrency model, measured"
    reproduce = Reproduce(
        command="nogil-bench measure --request body.json",
        request_body=json.dumps(request_body(spec), indent=2),
    )
    if benchmark.status == Status.SUCCEEDED and benchmark.document is not None:
        try:
            measurement = from_json(benchmark.document)
        except DocumentFormatError as unreadable:
            note = f"Its results cannot be drawn as a page: {unreadable}."
        else:
            return measurement_page(measurement, title=title, reproduce=reproduce, shared=shared)
    else:
        note = None
    if benchmark.status == Status.SUCCEEDED and note is None:
        note = "Measured before reports were kept: its figures are in its JSON; measure again."
    return status_page(
        title=title,
        status=benchmark.status,
        progress=progress_of(benchmark),
        reproduce=reproduce,
        # A shared page says that it failed, not the worker's traceback (paths on the host).
        error=None if benchmark.error is None else _first_line(benchmark.error, shared=shared),
        note=note,
    )


def progress_of(benchmark: Benchmark) -> Progress | None:
    """The running benchmark's progress; none (rather than a 500) if it cannot be read."""
    if benchmark.status != Status.RUNNING or benchmark.progress is None:
        return None
    try:
        return Progress.from_json(benchmark.progress)
    except KeyError, TypeError, ValueError:
        return None


def _first_line(error: str, *, shared: bool) -> str:
    return error.splitlines()[0] if shared and error.strip() else error
