"""A measurement's chart and pyperf suite: what `nogil-bench measure --chart/--pyperf-json`
writes to files and the HTML report embeds, drawn once, here."""

from typing import Any

from nogil_bench.bench.chart import ChartPoint, render_speedup_chart
from nogil_bench.bench.config import CEILING
from nogil_bench.bench.pyperf_export import PyperfBenchmark, pyperf_suite
from nogil_bench.bench.results import Measurement, Row


def series_name(row: Row, several_pythons: bool) -> str:
    return f"{row.runner} GIL={row.gil}" + (f" {row.python}" if several_pythons else "")


def chart_point(row: Row, several_pythons: bool) -> ChartPoint:
    assert row.speedup is not None
    return ChartPoint(
        panel=row.workload,
        series=series_name(row, several_pythons),
        workers=row.workers,
        speedup=row.speedup.ratio,
        low=row.speedup.ci_low,
        high=row.speedup.ci_high,
    )


def chart_title(measurement: Measurement) -> str:
    return f"Speedup over sequential, {measurement.environment.get('cpu_count', '?')} CPUs"


def chart_points(measurement: Measurement) -> tuple[list[ChartPoint], list[ChartPoint]]:
    """The chart's points (every speedup but the ceiling's) and the ceilings' line."""
    several_pythons = len({row.python for row in measurement.rows}) > 1
    measured = [row for row in measurement.rows if row.speedup is not None]
    points = [chart_point(row, several_pythons) for row in measured if row.runner != CEILING]
    return points, ceiling_points(measured)


def speedup_chart(measurement: Measurement, chart_format: str) -> bytes | None:
    """Speedups with their intervals as whiskers, and the host's ceiling as a line per panel;
    None when nothing has a speedup to draw (only the baseline ran)."""
    points, ceilings = chart_points(measurement)
    if not points:
        return None
    return render_speedup_chart(
        points, chart_format, title=chart_title(measurement), ceilings=ceilings
    )


def ceiling_points(rows: list[Row]) -> list[ChartPoint]:
    """One ceiling per panel and worker count, as the chart draws it: the host's, measured in
    each GIL mode and interpreter alike, so the first interpreter's lowest GIL mode stands for
    them. One worker is sequential itself, where the ceiling is 1x by definition."""
    if not rows:
        return []
    chosen: dict[tuple[str, int], Row] = {}
    for row in sorted(rows, key=lambda row: row.gil):
        if row.runner == CEILING and row.python == rows[0].python:
            chosen.setdefault((row.workload, row.workers), row)
    starts = {
        ChartPoint(panel=workload, series=CEILING, workers=1, speedup=1.0) for workload, _ in chosen
    }
    return sorted(starts, key=lambda point: point.panel) + [
        chart_point(row, several_pythons=False) for row in chosen.values()
    ]


def pyperf_document(measurement: Measurement) -> dict[str, Any]:
    """Every configuration's rounds as a pyperf benchmark, a run per block, for pyperf's own
    tools (`python -m pyperf stats`, `compare_to`)."""
    benchmarks = [
        PyperfBenchmark(
            name=row.title,
            values=row.wall_s,
            warmups=row.warmups_s,
            blocks=row.block_of_runs,
            metadata={
                "workload": row.workload,
                "runner": row.runner,
                "workers": row.workers,
                "gil": row.gil,
                "python": row.python,
                "python_executable": row.python_path,
            },
        )
        for row in measurement.rows
    ]
    return pyperf_suite(benchmarks)
