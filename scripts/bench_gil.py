"""Compare concurrency models with the GIL off (GIL=0) and on (GIL=1), in fresh interpreters.

    .venv/bin/python scripts/bench_gil.py fib            # the classic fib(N) x K table
    .venv/bin/python scripts/bench_gil.py image --quick  # image workloads x runners x workers
    .venv/bin/python scripts/bench_gil.py image --json a.json --chart speedup.svg
    .venv/bin/python scripts/bench_gil.py compare a.json b.json
    .venv/bin/python scripts/bench_gil.py report a.json --chart speedup.svg  # re-render only

Every configuration runs in its own fresh process (`python -X gil=N -m nogil_bench.bench.worker`).
"""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nogil_bench.bench.chart import ChartPoint, draw_speedup_chart
from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.harness import (
    Matrix,
    Row,
    derive,
    mismatched_outputs,
    probe_interpreter,
    run_plan,
    write_document,
)
from nogil_bench.bench.report import compare, markdown
from nogil_bench.bench.worker import Config
from nogil_bench.bench.workloads import IMAGE_WORKLOADS, build_workload
from nogil_bench.core.runtime import cpu_count
from nogil_bench.runners import RUNNERS


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args() -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="small sizes, fewer runs (< 2 min)")
    common.add_argument("--repeats", type=at_least(1), help="measured runs per configuration")
    common.add_argument(
        "--warmups", type=at_least(0), default=1, help="discarded runs (default: 1)"
    )
    common.add_argument(
        "--processes",
        type=at_least(1),
        help="fresh interpreters per configuration, runs pooled (default: 3, quick: 1)",
    )
    common.add_argument("--gil", type=int, nargs="+", choices=[0, 1], default=[0, 1])
    common.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="interpreter to measure (repeatable; default: this one). It must import "
        "nogil_bench, e.g. the .venv-gil/bin/python that `scripts/bootstrap.sh --gil` makes",
    )
    common.add_argument("--json", type=Path, metavar="PATH", help="write the result document")
    common.add_argument("--chart", type=Path, metavar="PATH", help="draw speedups (.svg, .png)")

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    fib = modes.add_parser("fib", parents=[common], help="fib(N) x K: sequential vs K threads")
    fib.add_argument("-n", type=at_least(1), help="fib argument (default: 32, quick: 30)")
    fib.add_argument(
        "--tasks", type=at_least(1), default=4, help="K tasks and threads (default: 4)"
    )
    image = modes.add_parser("image", parents=[common], help="image workloads x runners")
    image.add_argument("--workloads", nargs="+", choices=IMAGE_WORKLOADS, default=IMAGE_WORKLOADS)
    image.add_argument("--runners", nargs="+", choices=list(RUNNERS), default=list(RUNNERS))
    image.add_argument("--workers", type=at_least(1), nargs="+", help="default: 1 to 2x the CPUs")
    comparison = modes.add_parser("compare", help="speedups of two --json documents")
    comparison.add_argument("first", type=Path)
    comparison.add_argument("second", type=Path)
    report = modes.add_parser(
        "report", help="re-render a --json document's tables (and --chart) without measuring"
    )
    report.add_argument("document", type=Path)
    report.add_argument("--chart", type=Path, metavar="PATH", help="draw speedups (.svg, .png)")
    return parser.parse_args()


def matrix_for(args: argparse.Namespace) -> Matrix:
    interpreters = [probe_interpreter(path) for path in args.python or [sys.executable]]
    repeats = args.repeats or (3 if args.quick else 5)
    if args.mode == "fib":
        n = args.n or (30 if args.quick else 32)
        template = Config("fib", "sequential", 1, args.warmups, repeats, args.quick, n, args.tasks)
        return Matrix(interpreters, args.gil, ["fib"], ["threads"], [args.tasks], template)
    cpus = cpu_count()
    workers = args.workers or ([1, cpus] if args.quick else list(range(1, 2 * cpus + 1)))
    template = Config("pure-python", "sequential", 1, args.warmups, repeats, args.quick)
    return Matrix(interpreters, args.gil, args.workloads, args.runners, workers, template)


def chart_points(rows: list[Row]) -> list[ChartPoint]:
    several_pythons = len({row.python for row in rows}) > 1
    return [
        ChartPoint(
            panel=row.workload,
            series=f"{row.runner} GIL={row.gil}" + (f" {row.python}" if several_pythons else ""),
            workers=row.workers,
            speedup=row.speedup,
        )
        for row in rows
        if row.runner != "sequential" and row.speedup is not None
    ]


def main() -> int:
    args = parse_args()
    if args.mode == "compare":
        print(compare(load(args.first)[1], load(args.second)[1]))
        return 0
    if args.mode == "report":
        environment, rows = load(args.document)
        return publish(rows, environment, args)
    matrix = matrix_for(args)
    planned = matrix.plan()
    processes = args.processes or (1 if args.quick else 3)
    print(
        f"measuring {len(planned)} configurations, each in {processes} fresh process(es)",
        file=sys.stderr,
    )
    rows = run_plan(planned, processes)
    template = matrix.template
    descriptions = {
        name: build_workload(
            name, quick=template.quick, fib_n=template.fib_n, fib_tasks=template.fib_tasks
        ).description
        for name in matrix.workloads
    }
    environment = describe_environment() | {"workloads": descriptions}
    return publish(rows, environment, args)


def load(path: Path) -> tuple[dict[str, Any], list[Row]]:
    """A saved --json document's environment and rows, derived figures recomputed, so
    documents written by older versions gain the newer figures."""
    document = json.loads(path.read_text())
    return document["environment"], derive([Row(**row) for row in document["results"]])


def publish(rows: list[Row], environment: dict[str, Any], args: argparse.Namespace) -> int:
    """The Markdown tables on stdout, then the --json document and the --chart, if asked for."""
    print(markdown(rows, environment.get("workloads", {})))
    if mismatched := mismatched_outputs(rows):
        print(f"\nERROR: outputs differ between configurations for: {', '.join(mismatched)}")
        return 1
    print("\nEvery configuration of a workload produced byte-identical output.")
    if getattr(args, "json", None):
        write_document(args.json, environment, rows)
    if args.chart:
        title = f"Speedup over sequential, {environment['cpu_count']} CPUs"
        draw_speedup_chart(chart_points(rows), args.chart, title=title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
