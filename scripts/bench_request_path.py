"""The service's request path against the floor of its own stack (issue 25, item 3): the service,
served in its default mode, and scripts/reference_app.py (FastAPI + SQLModel on SQLite + PyJWT, no
middleware), served the same way, measured one after the other in each round with wrk.

The default mode is `nogil-bench serve`'s default with the GIL off: one Granian worker thread.
--server uvicorn serves both apps (and --before's) with one uvicorn process instead.
--reference-server serves the reference with another server than the service: `uvicorn` is
the floor as a newcomer runs it (`uvicorn app:app`), as issue 25 first measured it.

    .venv/bin/python scripts/bench_request_path.py                          # 5 rounds of 5 s
    .venv/bin/python scripts/bench_request_path.py --rounds 3 --log-level WARNING --markdown p.md
    git worktree add /tmp/before main
    .venv/bin/python scripts/bench_request_path.py --before /tmp/before/src    # a change, A/B

Per round, each app is started once (in a rotated order, one at a time, never both running) and
loaded on each of its endpoints for --duration seconds after a --warmup, with --connections
connections:

  service    /health/live, /api/v1/users/me (a bearer token), /api/v1/jobs (20 rows)
  reference  /live (the bare framework), /me (PyJWT + one session.get, a sync route)

Both read the same SQLite database (the reference only reads). With --database-url the service
reads that database instead (PostgreSQL, MariaDB: an empty one, or one these runs may add users
and jobs to), set up the same way, and the reference keeps its SQLite file.

Both log as they do by default, one line per request, to a file: the service its JSON access
line at --log-level INFO (its default), the reference its server's access line; with
--log-level WARNING neither logs a line per request.

With --before SRC, a third app runs in each round: the service from another checkout's source
(SRC, on PYTHONPATH; the same interpreter, packages and database), on the service's endpoints,
so that a change is measured against what it changes in the same rounds, paired, instead of
in two runs on a host whose speed moves between them.

The targets are ratios of rates taken in the same round: the service's /health/live, /users/me
and /jobs each against the reference's bare /live (at least 0.90, 0.50 and 0.35), and the
service's /users/me against the reference's /me. Each ratio is the geometric mean of the
rounds' ratios with a Student-t 95% interval on their logs (rounds - 1 degrees of freedom). A
target is "met" when the whole interval is at or above it, "missed" when the whole interval is
below, "undecided" otherwise.
"""

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_serve import (
    JOBS,
    ME,
    SETTLE_S,
    Endpoint,
    Estimate,
    Fixture,
    Mode,
    RatioEstimate,
    Run,
    Server,
    environment,
    fmt_estimate,
    mean_ci,
    prepare,
    progress,
    ratio_ci,
    reset,
    rotated,
    run_wrk,
    server_settings,
)
from live_server import NOGIL_BENCH
from sqlalchemy import make_url

from nogil_bench.serving import default_server

REFERENCE_APP = Path(__file__).with_name("reference_app.py")


@dataclass(frozen=True)
class App:
    name: str  # "service" or "reference"
    endpoints: tuple[Endpoint, ...]


SERVICE = App(
    "service",
    (
        Endpoint("/health/live", "GET", "/health/live"),
        Endpoint("/users/me", "GET", ME),
        Endpoint("/jobs", "GET", JOBS),
    ),
)
REFERENCE = App(
    "reference",
    (Endpoint("bare /live", "GET", "/live"), Endpoint("bare /me", "GET", "/me")),
)
# --before: the service from another checkout's source, on the service's endpoints.
BEFORE = App(
    "before",
    tuple(Endpoint(f"before {e.name}", e.method, e.path) for e in SERVICE.endpoints),
)


@dataclass(frozen=True)
class Target:
    name: str
    endpoint: str
    reference: str
    at_least: float | None  # None: reported, no target


TARGETS = (
    Target("/health/live vs bare /live", "/health/live", "bare /live", 0.90),
    Target("/users/me vs bare /live", "/users/me", "bare /live", 0.50),
    Target("/jobs vs bare /live", "/jobs", "bare /live", 0.35),
    Target("/users/me vs bare /me", "/users/me", "bare /me", None),
)
# With --before: each of the service's endpoints against the same endpoint before the change.
CHANGES = tuple(
    Target(f"{e.name} vs before", e.name, f"before {e.name}", None) for e in SERVICE.endpoints
)


@dataclass(frozen=True)
class Options:
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    log_level: str
    database_url: str | None
    json_path: Path | None
    markdown_path: Path | None
    before_src: Path | None = None
    server: str = "granian"
    reference_server: str = "granian"

    @property
    def apps(self) -> tuple[App, ...]:
        return (SERVICE, REFERENCE) if self.before_src is None else (SERVICE, BEFORE, REFERENCE)

    @property
    def targets(self) -> tuple[Target, ...]:
        return TARGETS if self.before_src is None else TARGETS + CHANGES


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per endpoint")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--log-level", default="INFO", help="the service's NOGIL_BENCH_LOG_LEVEL (INFO: default)"
    )
    parser.add_argument(
        "--database-url", help="the service's NOGIL_BENCH_DATABASE_URL (default: its SQLite file)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="SRC",
        help="also serve the service from this source directory (another checkout's src/) in "
        "each round, and give each endpoint's rate against it",
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default=default_server(reload=False),
        help="the HTTP server of every app (default: serve's, %(default)s)",
    )
    parser.add_argument(
        "--reference-server",
        choices=("uvicorn", "granian"),
        help="the reference's HTTP server (default: --server's)",
    )
    parser.add_argument("--json", type=Path, help="write every run and the ratios here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: an interval needs two paired rounds")
    if args.duration < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration and --connections must be positive, --warmup not negative")
    if args.before is not None and not (args.before / "nogil_bench" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no nogil_bench package there (give a src/ dir)")
    return Options(
        args.rounds,
        args.duration,
        args.warmup,
        args.connections,
        args.log_level.upper(),
        args.database_url,
        args.json,
        args.markdown,
        args.before.resolve() if args.before is not None else None,
        args.server,
        args.reference_server or args.server,
    )


@dataclass
class Results:
    config: dict[str, Any]
    environment: dict[str, Any]
    runs: dict[str, dict[int, Run]] = field(default_factory=dict)  # endpoint -> round -> run
    ratios: dict[str, RatioEstimate | None] = field(default_factory=dict)
    markdown: str = ""

    def rates(self, endpoint: str) -> dict[int, float]:
        return {r: run.rate for r, run in self.runs.get(endpoint, {}).items() if run.rate > 0}


@dataclass(frozen=True)
class Setup:
    """What one app is started with: its settings, and the accounts and rows it reads."""

    settings: Mapping[str, str]
    fixture: Fixture


def start(
    app: App, workdir: Path, settings: Mapping[str, str], fixture: Fixture, options: Options
) -> Server:
    if app is SERVICE:
        return Server(Mode(options.server, 1, 0), workdir, settings)
    if app is BEFORE:
        assert options.before_src is not None
        command = [str(NOGIL_BENCH), "serve", "--host", "127.0.0.1", "--port", "{port}"]
        command += ["--server", options.server]
        extra_env = {"PYTHONPATH": str(options.before_src)}
        return Server(Mode("before", 1, 0), workdir, settings, command=command, extra_env=extra_env)
    command = [
        sys.executable,
        str(REFERENCE_APP),
        "--database",
        str(fixture.database),  # the reference's set-up is always SQLite
        # One argument with its "=": a random key may begin with "-", which argparse would
        # take for an option.
        f"--secret={settings['SECRET_KEY']}",
        "--port",
        "{port}",
        "--server",
        options.reference_server,
    ]
    if settings["LOG_LEVEL"] not in {"DEBUG", "INFO"}:
        command.append("--no-access-log")
    return Server(Mode("reference", 1, 0), workdir, settings, command=command)


def measure(
    app: App, round_index: int, options: Options, workdir: Path, setup: Setup, results: Results
) -> None:
    fixture = setup.fixture
    server = start(app, workdir, setup.settings, fixture, options)
    try:
        if (reason := server.wait_live(app.endpoints[0].path)) is not None:
            raise SystemExit(f"{app.name} did not start: {reason} (log: {server.log_path})")
        for endpoint in app.endpoints:
            time.sleep(SETTLE_S)
            if options.warmup_s:
                run_wrk(
                    server.base_url,
                    endpoint,
                    fixture.reader.headers,
                    options.warmup_s,
                    options.connections,
                )
                time.sleep(SETTLE_S)
            run = run_wrk(
                server.base_url,
                endpoint,
                fixture.reader.headers,
                options.duration_s,
                options.connections,
            )
            results.runs.setdefault(endpoint.name, {})[round_index] = run
            progress(
                f"  {app.name} {endpoint.path}: {run.rate:,.0f}/s, p99 {run.p99_ms or 0:.1f} ms, "
                f"non-2xx {run.non_2xx}, socket errors {run.socket_errors}"
            )
    finally:
        server.stop()


def verdict(target: Target, estimate: RatioEstimate | None) -> str:
    if target.at_least is None or estimate is None or estimate.low is None:
        return "-"
    assert estimate.high is not None
    if estimate.low >= target.at_least:
        return "met"
    if estimate.high < target.at_least:
        return "missed"
    return "undecided"


def fmt_ratio(estimate: RatioEstimate | None) -> str:
    if estimate is None:
        return "n/a"
    if estimate.low is None or estimate.high is None:
        return f"{estimate.ratio:.2f}"
    return f"{estimate.ratio:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"


def servers(options: Options) -> str:
    if options.reference_server == options.server:
        return f"{options.server} (one worker) for every app"
    return f"{options.server} (one worker), the reference by {options.reference_server}"


def report(results: Results, options: Options) -> str:
    lines = [
        f"{options.rounds} rounds x {options.duration_s} s per endpoint, wrk "
        f"{options.connections} connections, served by {servers(options)}, "
        f"service log level {options.log_level}, "
        f"{results.environment['python']}, {results.environment['cpus']} CPUs; database: "
        f"{results.environment['database']}",
        "",
        "| app | endpoint | requests/s (95% CI) | p99 ms (mean over rounds) | non-2xx |",
        "|---|---|---:|---:|---:|",
    ]
    for app in options.apps:
        for endpoint in app.endpoints:
            runs = results.runs.get(endpoint.name, {})
            rate: Estimate | None = mean_ci([run.rate for run in runs.values()])
            p99: Estimate | None = mean_ci([r.p99_ms for r in runs.values() if r.p99_ms])
            non_2xx = sum(run.non_2xx + run.socket_errors for run in runs.values())
            lines.append(
                f"| {app.name} | `{endpoint.path}` | {fmt_estimate(rate)} | "
                f"{fmt_estimate(p99, 1)} | {non_2xx} |"
            )
    lines += [
        "",
        "| ratio of rates, paired by round | 95% CI | target | verdict |",
        "|---|---:|---:|---|",
    ]
    for target in options.targets:
        estimate = results.ratios.get(target.name)
        wanted = f">= {target.at_least:.2f}" if target.at_least is not None else "-"
        lines.append(
            f"| {target.name} | {fmt_ratio(estimate)} | {wanted} | {verdict(target, estimate)} |"
        )
    return "\n".join(lines) + "\n"


def run(options: Options) -> Results:
    results = Results(
        config={
            "rounds": options.rounds,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "connections": options.connections,
            "log_level": options.log_level,
            "server": options.server,
            "reference_server": options.reference_server,
            "service_database": "SQLite" if options.database_url is None else "--database-url",
            "command": " ".join(["scripts/bench_request_path.py", *sys.argv[1:]]),
            "before": str(options.before_src) if options.before_src is not None else None,
        },
        environment=environment("wrk")
        | {
            "database": "SQLite (WAL), the service's file, read by both apps"
            if options.database_url is None
            else f"service: {make_url(options.database_url).get_backend_name()}; "
            "reference: SQLite (WAL)"
        },
    )
    with tempfile.TemporaryDirectory(prefix="nogil-bench-path-") as tmp:
        workdir = Path(tmp)
        settings = server_settings(workdir / "data", secrets.token_urlsafe(32))
        progress("set-up: schema, two users, 20 jobs")
        fixture = prepare(workdir, settings)
        reset(fixture)
        settings = {**settings, "LOG_LEVEL": options.log_level}
        setups = {app.name: Setup(settings, fixture) for app in options.apps}
        if options.database_url is not None:
            progress("set-up: the same on the service's --database-url")
            elsewhere = {**settings, "DATABASE_URL": options.database_url}
            setups[SERVICE.name] = Setup(elsewhere, prepare(workdir, elsewhere))
            setups[BEFORE.name] = setups[SERVICE.name]
        for round_index in range(options.rounds):
            order = rotated(options.apps, round_index)
            progress(
                f"round {round_index + 1}/{options.rounds}: {', '.join(a.name for a in order)}"
            )
            for app in order:
                measure(app, round_index, options, workdir, setups[app.name], results)
    for target in options.targets:
        results.ratios[target.name] = ratio_ci(
            results.rates(target.reference), results.rates(target.endpoint)
        )
    results.markdown = report(results, options)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    results = run(options)
    print(results.markdown)
    if options.markdown_path is not None:
        options.markdown_path.write_text(results.markdown)
    if options.json_path is not None:
        document = {
            "config": results.config,
            "environment": results.environment,
            "runs": {
                name: {str(r): asdict(run) for r, run in runs.items()}
                for name, runs in results.runs.items()
            },
            "ratios": {
                name: asdict(estimate) if estimate is not None else None
                for name, estimate in results.ratios.items()
            },
        }
        options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
