"""Compare concurrency models with the GIL off (GIL=0) and on (GIL=1), paired round by round.

    .venv/bin/python scripts/bench_gil.py fib            # the classic fib(N) x K table
    .venv/bin/python scripts/bench_gil.py image --quick  # image workloads x runners x workers
    .venv/bin/python scripts/bench_gil.py image --json a.json --chart speedup.svg
    .venv/bin/python scripts/bench_gil.py request body.json  # a POST /api/v1/benchmarks body
    .venv/bin/python scripts/bench_gil.py compare a.json b.json   # calibration of two runs
    .venv/bin/python scripts/bench_gil.py report a.json --chart speedup.svg  # re-render only

Every configuration runs in its own fresh worker process (`python -X gil=N -m
nogil_bench.bench.worker`), kept alive while rounds interleave all configurations; speedups are
medians of per-round ratios with exact 95% CIs, and every comparison gets a verdict.
"""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from nogil_bench.bench.chart import ChartPoint, draw_speedup_chart
from nogil_bench.bench.config import CEILING, Config
from nogil_bench.bench.document import DocumentFormatError, load_document, write_document
from nogil_bench.bench.harness import MeasurementError, measure_matrix
from nogil_bench.bench.plan import SEQUENTIAL, Matrix, probe_interpreter
from nogil_bench.bench.report import compare, markdown
from nogil_bench.bench.results import Measurement, Row, mismatched_outputs
from nogil_bench.bench.workloads import IMAGE_WORKLOADS
from nogil_bench.benchmarks.runs import plan as benchmark_plan
from nogil_bench.benchmarks.schemas import BenchmarkCreate, BenchmarkSpec
from nogil_bench.benchmarks.service import check_request
from nogil_bench.core.config import Settings
from nogil_bench.core.errors import InvalidInputError
from nogil_bench.core.runtime import cpu_count
from nogil_bench.runners import local_runners, runners


def at_least[N: (int, float)](minimum: N, kind: Callable[[str], N]) -> Callable[[str], N]:
    def parse(text: str) -> N:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args() -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="small sizes, fewer rounds")
    common.add_argument(
        "--repeats",
        type=at_least(1, int),
        help="rounds at least (default: 10, quick: 6; CIs need 6)",
    )
    common.add_argument(
        "--max-repeats",
        type=at_least(1, int),
        help="rounds at most, if the CIs stay wide (default: 30, quick: 12)",
    )
    common.add_argument(
        "--target-ci",
        type=at_least(0.0, float),
        help="stop once every CI's half-width is within this share of its ratio (default 0.05)",
    )
    common.add_argument("--warmups", type=at_least(0, int), help="discarded runs (default: 1)")
    common.add_argument(
        "--gil", type=int, nargs="+", choices=[0, 1], help="GIL modes (default: 0 and 1)"
    )
    common.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="interpreter to measure (repeatable; default: this one). It must import "
        "nogil_bench, e.g. the .venv-gil/bin/python that `scripts/bootstrap.sh --gil` makes",
    )
    common.add_argument("--json", type=Path, metavar="PATH", help="write the result document")
    common.add_argument("--chart", type=Path, metavar="PATH", help="draw speedups (.svg, .png)")
    common.add_argument(
        "--pyperf-json", type=Path, metavar="PATH", help="write the runs as a pyperf suite"
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    fib = modes.add_parser("fib", parents=[common], help="fib(N) x K: sequential vs K threads")
    fib.add_argument("-n", type=at_least(1, int), help="fib argument (default: 32, quick: 30)")
    fib.add_argument(
        "--tasks", type=at_least(1, int), default=4, help="K tasks and threads (default: 4)"
    )
    image = modes.add_parser("image", parents=[common], help="image workloads x runners")
    image.add_argument("--workloads", nargs="+", choices=IMAGE_WORKLOADS, default=IMAGE_WORKLOADS)
    image.add_argument(
        "--runners", nargs="+", choices=list(runners()), default=list(local_runners())
    )
    image.add_argument(
        "--workers", type=at_least(1, int), nargs="+", help="default: 1 to 2x the CPUs"
    )
    request = modes.add_parser(
        "request",
        parents=[common],
        help="the workload of a POST /api/v1/benchmarks body (a JSON file), planned and "
        "checked as the service does; its repeats and GIL modes unless given here",
    )
    request.add_argument("body", type=Path, help="the request body, as posted to the service")
    comparison = modes.add_parser(
        "compare", help="calibration: how far a second --json document agrees with a first"
    )
    comparison.add_argument("first", type=Path)
    comparison.add_argument("second", type=Path)
    report = modes.add_parser(
        "report", help="re-render a --json document's tables (and --chart) without measuring"
    )
    report.add_argument("document", type=Path)
    report.add_argument("--chart", type=Path, metavar="PATH", help="draw speedups (.svg, .png)")
    report.add_argument("--pyperf-json", type=Path, metavar="PATH", help="write a pyperf suite")
    args = parser.parse_args()
    if args.mode == "request":
        # The body's settings, as the service would use them, unless an option overrides one.
        spec = spec_of_request(args.body)
        args.spec = spec.model_copy(
            update={
                "gil": args.gil or spec.gil,
                "repeats": args.repeats or spec.repeats,
                "max_repeats": args.max_repeats or spec.max_repeats,
                "warmups": spec.warmups if args.warmups is None else args.warmups,
                "target_ci": args.target_ci or spec.target_ci,
            }
        )
        args.repeats, args.max_repeats = args.spec.repeats, args.spec.max_repeats
        args.target_ci = args.spec.target_ci
    if args.mode in {"fib", "image"}:
        args.gil = args.gil or [0, 1]
        args.warmups = 1 if args.warmups is None else args.warmups
        args.target_ci = args.target_ci or 0.05
        args.repeats = args.repeats or (6 if args.quick else 10)
        args.max_repeats = args.max_repeats or (12 if args.quick else 30)
        if args.max_repeats < args.repeats:
            parser.error(f"--max-repeats {args.max_repeats} is below --repeats {args.repeats}")
    return args


def spec_of_request(path: Path) -> BenchmarkSpec:
    """The body checked as POST /api/v1/benchmarks checks it (422 there, exit 1 here)."""
    try:
        body = BenchmarkCreate.model_validate_json(path.read_bytes())
        return check_request(body, Settings())
    except (OSError, ValueError, InvalidInputError) as error:
        raise SystemExit(f"error: {path}: {error}") from None


def matrix_for(args: argparse.Namespace) -> Matrix:
    interpreters = [probe_interpreter(path) for path in args.python or [sys.executable]]
    if args.mode == "fib":
        n = args.n or (30 if args.quick else 32)
        template = Config(
            "fib",
            SEQUENTIAL,
            1,
            warmups=args.warmups,
            quick=args.quick,
            fib_n=n,
            fib_tasks=args.tasks,
        )
        return Matrix(interpreters, args.gil, ["fib"], ["threads"], [args.tasks], template)
    cpus = cpu_count()
    workers = args.workers or ([1, cpus] if args.quick else list(range(1, 2 * cpus + 1)))
    template = Config("pure-python", SEQUENTIAL, 1, warmups=args.warmups, quick=args.quick)
    return Matrix(interpreters, args.gil, args.workloads, args.runners, workers, template)


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


def draw_chart(measurement: Measurement, path: Path) -> None:
    """Speedups with their CIs as whiskers, and the host's ceiling as a line per panel."""
    several_pythons = len({row.python for row in measurement.rows}) > 1
    measured = [row for row in measurement.rows if row.speedup is not None]
    points = [chart_point(row, several_pythons) for row in measured if row.runner != CEILING]
    title = f"Speedup over sequential, {measurement.environment['cpu_count']} CPUs"
    draw_speedup_chart(points, path, title=title, ceilings=ceiling_points(measured))


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


def write_pyperf(measurement: Measurement, path: Path) -> None:
    """Every configuration's rounds as a pyperf benchmark, for pyperf's own tools."""
    from nogil_bench.bench.pyperf_export import PyperfBenchmark, pyperf_suite  # noqa: PLC0415

    benchmarks = [
        PyperfBenchmark(
            name=row.title,
            values=row.wall_s,
            warmups=row.warmups_s,
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
    path.write_text(json.dumps(pyperf_suite(benchmarks), indent=2) + "\n")


def main() -> int:
    args = parse_args()
    try:
        if args.mode == "compare":
            print(compare(load_document(args.first), load_document(args.second)))
            return 0
        if args.mode == "report":
            return publish(load_document(args.document), args)
    except DocumentFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    planned = benchmark_plan(args.spec) if args.mode == "request" else matrix_for(args).plan()
    print(
        f"measuring {len(planned)} configurations, each in its own worker process, in "
        f"{args.repeats} to {args.max_repeats} rounds",
        file=sys.stderr,
    )
    try:
        measurement = measure_matrix(
            planned,
            min_rounds=args.repeats,
            max_rounds=args.max_repeats,
            target_ci=args.target_ci,
        )
    except MeasurementError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return publish(measurement, args)


def publish(measurement: Measurement, args: argparse.Namespace) -> int:
    """The Markdown tables on stdout, then the --json document, --chart and --pyperf-json."""
    print(markdown(measurement))
    if mismatched := mismatched_outputs(measurement.rows):
        print(f"\nERROR: outputs differ between configurations for: {', '.join(mismatched)}")
        return 1
    print("\nEvery configuration of a workload produced byte-identical output.")
    if getattr(args, "json", None):
        write_document(args.json, measurement)
    if args.chart:
        draw_chart(measurement, args.chart)
    if args.pyperf_json:
        write_pyperf(measurement, args.pyperf_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
