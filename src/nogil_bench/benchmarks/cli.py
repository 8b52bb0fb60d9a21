"""`nogil-bench measure`: any workload, or a function of your own, on every concurrency model,
with the GIL off and on, by the one engine (`nogil_bench.bench`).

    nogil-bench measure mypkg.parse:parse_one --tasks mypkg.parse:sample_inputs
    nogil-bench measure path/to/file.py:step --count 64
    nogil-bench measure fib --param n=30 --runners threads --workers 4
    nogil-bench measure pure-python native small-batch --quick --json a.json --chart a.svg
    nogil-bench measure fib --quick --repeat-check  # twice: does the rerun land inside?
    nogil-bench measure --request body.json      # a POST /api/v1/benchmarks body
    nogil-bench compare a.json b.json            # calibration: does b land inside a's intervals
    nogil-bench report a.json --chart a.svg      # re-render without measuring

Measuring goes in blocks: each block starts a fresh worker process for every configuration and
runs rounds that interleave them all. Ratios are geometric means of per-round ratios, each with
the interval a rerun lands in 95% of the time (from the variance inside a block and between
blocks), and every comparison gets a verdict. Runners that cannot run the work are left out,
each with why.
"""

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nogil_bench.bench.calibration import calibrate
from nogil_bench.bench.chart import draw_speedup_chart
from nogil_bench.bench.config import Config
from nogil_bench.bench.document import DocumentFormatError, load_document, write_document
from nogil_bench.bench.figures import chart_points, chart_title, pyperf_document
from nogil_bench.bench.harness import MeasurementError, check_runners, measure_matrix
from nogil_bench.bench.plan import SEQUENTIAL, Matrix, probe_interpreter
from nogil_bench.bench.report import calibration_table, compare, markdown
from nogil_bench.bench.results import Design, Measurement, mismatched_outputs
from nogil_bench.bench.target import TargetError, make_target
from nogil_bench.core.files import write_atomically
from nogil_bench.core.runtime import cpu_count
from nogil_bench.runners import local_runners, runners

if TYPE_CHECKING:
    from nogil_bench.benchmarks.schemas import BenchmarkSpec

from nogil_bench.workloads.registry import (
    InvalidParamsError,
    UnknownWorkloadError,
    params_to_json,
    parse_params,
    workloads,
)

# Rounds at least and at most, in blocks of BLOCK_ROUNDS: two blocks of fresh processes is the
# fewest with an interval.
BLOCK_ROUNDS = 5
DEFAULT_REPEATS = 10
DEFAULT_MAX_REPEATS = 30
# --quick: two blocks of up to 10 rounds, as many as fit in QUICK_BUDGET_S of measuring, so that
# the whole command stays under 5 minutes on a slow day too (5 to 10 rounds a block for three
# workloads here; see docs/benchmarks.md, "Calibration").
QUICK_BLOCK_ROUNDS = 10
QUICK_REPEATS = 2 * QUICK_BLOCK_ROUNDS
QUICK_BUDGET_S = 255.0


class UsageError(Exception):
    """What the command line asked for cannot be measured; the message says why (exit 2)."""


def at_least[N: (int, float)](minimum: N, kind: Callable[[str], N]) -> Callable[[str], N]:
    def parse(text: str) -> N:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def param(text: str) -> tuple[str, Any]:
    """`name=value`, the value read as JSON where it is JSON (30, true, [1, 2]), else a string."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nogil-bench",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    measure = commands.add_parser(
        "measure",
        help="measure workloads or your own function on the runners, GIL off and on",
        description="Measure an installed workload (nogil-bench measure --list) or a function "
        "of yours, named as package.module:function or path/to/file.py:function.",
    )
    measure.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="installed workloads by name, or one package.module:function or "
        "path/to/file.py:function (then --tasks or --count)",
    )
    measure.add_argument("--list", action="store_true", help="list the installed workloads")
    measure.add_argument(
        "--tasks",
        metavar="REF",
        help="module:callable or file.py:callable returning the task arguments, one per call",
    )
    measure.add_argument(
        "--count",
        type=at_least(1, int),
        help="call the function N times, with the task's index (0 .. N-1)",
    )
    measure.add_argument(
        "--param",
        type=param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the installed workload (repeatable)",
    )
    measure.add_argument(
        "--request",
        type=Path,
        metavar="BODY.json",
        help="measure a POST /api/v1/benchmarks body as the service would (its repeats and "
        "GIL modes unless given here)",
    )
    measure.add_argument("--quick", action="store_true", help="small sizes, fewer rounds")
    measure.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (a live bar on a terminal, else a line per set-up and "
        "block); the tables are printed all the same",
    )
    measure.add_argument(
        "--runners",
        nargs="+",
        choices=list(runners()),
        help=f"default: {' '.join(local_runners())}; sequential, the baseline, always runs",
    )
    measure.add_argument(
        "--workers", type=at_least(1, int), nargs="+", help="default: 1 to 2x the CPUs"
    )
    measure.add_argument(
        "--repeats",
        type=at_least(1, int),
        help=f"rounds at least, in whole blocks (default: {DEFAULT_REPEATS}, quick: "
        f"{QUICK_REPEATS}; intervals need 2 blocks)",
    )
    measure.add_argument(
        "--max-repeats",
        type=at_least(1, int),
        help=f"rounds at most, if the intervals stay wide (default: {DEFAULT_MAX_REPEATS}, "
        f"quick: {QUICK_REPEATS})",
    )
    measure.add_argument(
        "--block-rounds",
        type=at_least(1, int),
        help=f"rounds in each block of fresh worker processes (default: {BLOCK_ROUNDS}, quick: "
        f"{QUICK_BLOCK_ROUNDS})",
    )
    measure.add_argument(
        "--budget",
        type=at_least(1.0, float),
        metavar="SECONDS",
        help="fit measuring in about this time: every block's rounds are cut to what fits, as "
        f"the first block's set-up and rounds are timed (default: none, quick: {QUICK_BUDGET_S:g})",
    )
    measure.add_argument(
        "--target-ci",
        type=at_least(0.0, float),
        help="stop once every interval's half-width is within this share of its ratio "
        "(default 0.05)",
    )
    measure.add_argument(
        "--repeat-check",
        action="store_true",
        help="measure twice, back to back, and show how far the second run lands inside the "
        "first's intervals, per kind of comparison: the precision this host allows (the "
        "tables, --json, --chart and --pyperf-json are the first run's)",
    )
    measure.add_argument(
        "--warmups",
        type=at_least(0, int),
        help="discarded runs per configuration, in each block (default: 1)",
    )
    measure.add_argument(
        "--gil", type=int, nargs="+", choices=[0, 1], help="GIL modes (default: 0 and 1)"
    )
    measure.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="interpreter to measure (repeatable; default: this one). It must import "
        "nogil_bench, e.g. the .venv-gil/bin/python that `scripts/bootstrap.sh --gil` makes",
    )
    add_outputs(measure)
    comparison = commands.add_parser(
        "compare", help="calibration: how far a second --json document agrees with a first"
    )
    comparison.add_argument("first", type=Path)
    comparison.add_argument("second", type=Path)
    report = commands.add_parser(
        "report", help="re-render a --json document's tables (and --chart) without measuring"
    )
    report.add_argument("document", type=Path)
    add_outputs(report, json_document=False)
    return parser


def add_outputs(parser: argparse.ArgumentParser, *, json_document: bool = True) -> None:
    if json_document:
        parser.add_argument("--json", type=Path, metavar="PATH", help="write the result document")
    parser.add_argument("--chart", type=Path, metavar="PATH", help="draw speedups (.svg, .png)")
    parser.add_argument(
        "--html",
        type=Path,
        metavar="PATH",
        help="write the report as one self-contained page: the answer in words, the table, the "
        "chart, the environment, how to reproduce it and the data (no script, reads offline)",
    )
    parser.add_argument(
        "--pyperf-json", type=Path, metavar="PATH", help="write the runs as a pyperf suite"
    )


def rounds_from(args: argparse.Namespace) -> None:
    """The rounds' options after defaults (a --request body's own unless given here)."""
    if args.request is not None:
        spec = spec_of_request(args.request)
        args.spec = spec.model_copy(
            update={
                "gil": args.gil or spec.gil,
                "repeats": args.repeats or spec.repeats,
                "max_repeats": args.max_repeats or spec.max_repeats,
                "block_rounds": args.block_rounds or spec.block_rounds,
                "warmups": spec.warmups if args.warmups is None else args.warmups,
                "target_ci": args.target_ci or spec.target_ci,
            }
        )
        try:
            args.design = replace(args.spec.design(), budget_s=args.budget)
        except ValueError as error:
            raise UsageError(f"{args.request}: {error}") from None
        return
    args.gil = args.gil or [0, 1]
    args.warmups = 1 if args.warmups is None else args.warmups
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    max_repeats = args.max_repeats or (
        max(QUICK_REPEATS, repeats) if args.quick else max(DEFAULT_MAX_REPEATS, repeats)
    )
    if max_repeats < repeats:
        raise UsageError(f"--max-repeats {max_repeats} is below --repeats {repeats}")
    args.design = Design.of_rounds(
        repeats,
        max_repeats,
        args.block_rounds or (QUICK_BLOCK_ROUNDS if args.quick else BLOCK_ROUNDS),
        args.target_ci or 0.05,
        args.budget or (QUICK_BUDGET_S if args.quick else None),
    )


def describe_design(design: Design) -> str:
    blocks = (
        f"{design.min_blocks}"
        if design.min_blocks == design.max_blocks
        else f"{design.min_blocks} to {design.max_blocks}"
    )
    budget = "" if design.budget_s is None else f" (fewer to fit {design.budget_s:g} s)"
    return f"in {blocks} blocks of {design.block_rounds} rounds{budget}"


def spec_of_request(path: Path) -> BenchmarkSpec:
    """The body checked as POST /api/v1/benchmarks checks it (422 there, exit 2 here)."""
    # Imported here, as are the service's modules below: only --request needs the service's
    # schemas and database models, whose imports take seconds of every other command's start.
    from nogil_bench.benchmarks.schemas import BenchmarkCreate  # noqa: PLC0415
    from nogil_bench.benchmarks.service import check_request  # noqa: PLC0415
    from nogil_bench.core.config import Settings  # noqa: PLC0415
    from nogil_bench.core.errors import InvalidInputError  # noqa: PLC0415

    try:
        body = BenchmarkCreate.model_validate_json(path.read_bytes())
        return check_request(body, Settings())
    except (OSError, ValueError, InvalidInputError) as error:
        raise UsageError(f"{path}: {error}") from None


def workload_configs(args: argparse.Namespace) -> list[Config]:
    """What TARGET names, checked here without importing a user's code: installed workloads
    with their parameters, or one function with its tasks."""
    if not args.targets:
        raise UsageError("name a workload (--list shows them), a function, or --request")
    functions = [target for target in args.targets if ":" in target]
    if functions:
        if len(args.targets) > 1:
            raise UsageError("a function is measured on its own: give one TARGET")
        if args.param:
            raise UsageError("--param sets an installed workload's parameters, not a function's")
        function = make_target(functions[0], tasks=args.tasks, count=args.count, cwd=Path.cwd())
        return [Config(function.function, SEQUENTIAL, 1, warmups=args.warmups, function=function)]
    if args.tasks is not None or args.count is not None:
        raise UsageError("--tasks and --count go with a function (module:function), not a name")
    if args.param and len(args.targets) > 1:
        raise UsageError("--param applies to one workload: give one TARGET")
    configs = []
    for name in dict.fromkeys(args.targets):
        params = parse_params(name, dict(args.param), quick=args.quick)
        configs.append(
            Config(name, SEQUENTIAL, 1, warmups=args.warmups, params=params_to_json(name, params))
        )
    return configs


def matrix_for(args: argparse.Namespace) -> Matrix:
    if args.request is not None:
        from nogil_bench.benchmarks.runs import plan_matrix  # noqa: PLC0415

        return plan_matrix(args.spec)
    interpreters = [probe_interpreter(path) for path in args.python or [sys.executable]]
    cpus = cpu_count()
    workers = args.workers or ([1, cpus] if args.quick else list(range(1, 2 * cpus + 1)))
    return Matrix(
        interpreters=interpreters,
        gil_modes=args.gil,
        workloads=workload_configs(args),
        runners=args.runners or list(local_runners()),
        worker_counts=workers,
    )


def list_workloads() -> str:
    lines = []
    for name, workload in workloads().items():
        lines.append(f"{name}: {workload.description}")
        defaults = parse_params(name, {})
        lines.append(f"    parameters: {json.dumps(params_to_json(name, defaults))}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(arguments)
    args.command_line = shlex.join(["nogil-bench", *arguments])
    try:
        if args.command == "compare":
            print(compare(load_document(args.first), load_document(args.second)))
            return 0
        if args.command == "report":
            return publish(load_document(args.document), args)
        if args.list:
            print(list_workloads())
            return 0
        rounds_from(args)
        matrix = matrix_for(args)
    except (
        UsageError,
        TargetError,
        InvalidParamsError,
        UnknownWorkloadError,
        DocumentFormatError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return measure(matrix, args)


def measure(matrix: Matrix, args: argparse.Namespace) -> int:
    # Imported here: rich takes a tenth of a second of every other command's start.
    from nogil_bench.benchmarks.progress_bar import showing_progress  # noqa: PLC0415

    try:
        matrix, unsupported = check_runners(matrix)
        for found in unsupported:
            print(f"not measured: {found.runner} ({found.python}): {found.reason}", file=sys.stderr)
        planned = matrix.plan()
        if not args.quiet:
            print(
                f"measuring {len(planned)} configurations, each in a fresh worker process per "
                f"block, {describe_design(args.design)}",
                file=sys.stderr,
            )
        with showing_progress(quiet=args.quiet) as shown:
            shows = partial(measure_matrix, progress=shown.line, on_progress=shown.update)
            measurement = shows(planned, args.design)
            rerun = shows(planned, args.design) if args.repeat_check else None
    except MeasurementError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    # How it was asked for, kept in the document: a page rendered from it later says so.
    asked = {"command": args.command_line}
    if args.request is not None:
        asked["request"] = args.request.read_text(errors="replace")
    environment = measurement.environment | asked
    status = publish(replace(measurement, unsupported=unsupported, environment=environment), args)
    if rerun is not None:
        print("\n## Repeat check: the same measurement again, right after\n")
        print("\n".join(calibration_table(calibrate(measurement.findings, rerun.findings))))
        print(f"\nFirst run: {measurement.stop_text}; second run: {rerun.stop_text}")
    return status


def publish(measurement: Measurement, args: argparse.Namespace) -> int:
    """The Markdown tables on stdout, then the --json document, --chart, --pyperf-json and
    --html;
    exit 1 when results differed between configurations."""
    print(markdown(measurement))
    if getattr(args, "json", None):
        write_document(args.json, measurement)
    if args.chart:
        draw_chart(measurement, args.chart)
    if args.pyperf_json:
        write_pyperf(measurement, args.pyperf_json)
    if args.html:
        write_html(measurement, args.html)
    if mismatched_outputs(measurement.rows):
        return 1
    print("\nEvery configuration of a workload produced the same results.")
    return 0


def draw_chart(measurement: Measurement, path: Path) -> None:
    """Speedups with their CIs as whiskers, and the host's ceiling as a line per panel."""
    points, ceilings = chart_points(measurement)
    draw_speedup_chart(points, path, title=chart_title(measurement), ceilings=ceilings)


def write_pyperf(measurement: Measurement, path: Path) -> None:
    """Every configuration's rounds as a pyperf benchmark, for pyperf's own tools."""
    path.write_text(json.dumps(pyperf_document(measurement), indent=2) + "\n")


def write_html(measurement: Measurement, path: Path) -> None:
    """The report page, with the command (and --request body) that measured it."""
    # Imported here: Jinja2 takes a tenth of a second of every other command's start.
    from nogil_bench.reports.measurement import Reproduce, measurement_page  # noqa: PLC0415

    environment = measurement.environment
    command, request = environment.get("command"), environment.get("request")
    page = measurement_page(
        measurement,
        title=" + ".join(dict.fromkeys(row.workload for row in measurement.rows)),
        reproduce=Reproduce(
            command=command if isinstance(command, str) else None,
            request_body=request if isinstance(request, str) else None,
        ),
    )
    write_atomically(path, page.encode())
