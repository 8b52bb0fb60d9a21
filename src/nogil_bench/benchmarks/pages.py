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
from nogil_bench.reports.measurement import Reproduce, measurement_page, running_page


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
            return running_page(
                title=title,
                status=benchmark.status,
                progress=None,
                reproduce=reproduce,
                error=f"its results cannot be drawn again: {unreadable}",
            )
        return measurement_page(measurement, title=title, reproduce=reproduce, shared=shared)
    error = benchmark.error
    if benchmark.status == Status.SUCCEEDED:
        error = "measured before reports were kept: its figures are in the JSON; measure again"
    progress = (
        Progress.from_json(benchmark.progress)
        if benchmark.progress is not None and benchmark.status == Status.RUNNING
        else None
    )
    return running_page(
        title=title, status=benchmark.status, progress=progress, reproduce=reproduce, error=error
    )
