"""The `nogil-bench` console script."""

import argparse
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from nogil_bench.core import runtime
from nogil_bench.core.config import get_settings
from nogil_bench.serving import SERVERS, ServingModeError, default_server

HEALTHCHECK_TIMEOUT_S = 5.0
# Handed whole to nogil_bench.benchmarks.cli, which has their options.
MEASURING = {
    "measure": "measure workloads or your own function on every runner, GIL off and on",
    "compare": "calibration: how far a second measurement's --json agrees with a first",
    "report": "re-render a measurement's --json document without measuring",
}


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="nogil-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=settings.HOST, help="default: %(default)s")
    serve.add_argument(
        "--port", type=port_number, default=settings.PORT, help="default: %(default)s"
    )
    serve.add_argument(
        "--server",
        choices=SERVERS,
        help="uvicorn: one process; gunicorn: worker processes (uvicorn workers); granian: "
        "worker threads of one process (free-threaded builds with the GIL off) (default: "
        "granian where it can serve, else uvicorn, as with --reload; docs/serving.md)",
    )
    serve.add_argument(
        "--workers",
        type=positive_count,
        default=1,
        help="worker processes (gunicorn) or threads (granian); uvicorn has one "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when the source changes (development: on a stop, the socket closes "
        "first, then running work drains; no 503 phase)",
    )
    for name, summary in MEASURING.items():
        commands.add_parser(name, help=f"{summary} (nogil-bench {name} --help)", add_help=False)
    check = commands.add_parser(
        "healthcheck",
        help="exit 0 when the service's liveness probe answers 200, else 1 (for HEALTHCHECK)",
    )
    check.add_argument(
        "--url",
        default=f"http://127.0.0.1:{settings.PORT}/health/live",
        help="default: %(default)s",
    )
    database = commands.add_parser(
        "db", help="the database schema (NOGIL_BENCH_DATABASE_URL, else SQLite in DATA_DIR)"
    )
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_commands.add_parser(
        "upgrade",
        help="migrate to the newest revision (the service does it at start, too)",
    )
    database_commands.add_parser("current", help="print the revision the database is at")
    worker = commands.add_parser(
        "worker",
        help="run queued work from the broker (NOGIL_BENCH_BROKER_URL) on this machine; "
        "further arguments go to Celery's worker",
    )
    worker.add_argument(
        "--queues",
        default="all",
        metavar="KINDS",
        help="the kinds of work this worker takes, comma-separated: jobs (single jobs and "
        "batch chunks), benchmarks, or all (default: %(default)s)",
    )
    dead = commands.add_parser(
        "dead-letters",
        help="the tasks workers kept instead of running (rejected, or failed on their last "
        "attempt): list them, or send them back to their queue",
    )
    dead_commands = dead.add_subparsers(dest="dead_command", required=True)
    listing = dead_commands.add_parser("list", help="show them, oldest first, leaving them")
    again = dead_commands.add_parser(
        "requeue", help="send them back to their queue (work runs at most once all the same)"
    )
    for sub in (listing, again):
        sub.add_argument(
            "--queues",
            default="all",
            metavar="KINDS",
            help="jobs, benchmarks, comma-separated, or all (default: %(default)s)",
        )
        sub.add_argument("--json", action="store_true", help="as a JSON list")
    listing.add_argument(
        "--limit", type=positive_count, default=100, help="per queue (default: %(default)s)"
    )
    again.add_argument("ids", nargs="*", metavar="TASK_ID", help="the dead letters to requeue")
    again.add_argument("--all", action="store_true", help="every dead letter of the queues")
    users = commands.add_parser("users", help="accounts, as an operator")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    admin = user_commands.add_parser(
        "admin", help="make a registered user an admin (operators' routes), or --revoke"
    )
    admin.add_argument("email")
    admin.add_argument("--revoke", action="store_true", help="make them an admin no more")
    tasks = commands.add_parser(
        "task-worker",
        help="run the celery runners' tasks (celery-threads, celery-prefork) on this machine; "
        "needs NOGIL_BENCH_BROKER_URL and the service's NOGIL_BENCH_SECRET_KEY",
    )
    tasks.add_argument(
        "--pool", choices=("threads", "prefork"), default="threads", help="default: %(default)s"
    )
    tasks.add_argument(
        "--concurrency",
        type=positive_count,
        default=runtime.cpu_count(),
        help="tasks at once (default: the CPUs, %(default)s)",
    )
    flower = commands.add_parser(
        "flower",
        help="Flower, Celery's monitor, for the workers on the broker (NOGIL_BENCH_BROKER_URL), "
        "read-only; further arguments go to Flower (--name=value, e.g. --basic-auth=user:pw)",
    )
    flower.add_argument("--port", type=port_number, default=5555, help="default: %(default)s")
    flower.add_argument("--address", default="127.0.0.1", help="default: %(default)s")
    return parser


def positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return count


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def healthcheck(url: str) -> int:
    """Container health without curl: 0 when `url` answers 200, 1 with the reason otherwise."""
    if not url.startswith(("http://", "https://")):
        print(f"unhealthy: {url!r} is not an http(s) URL", file=sys.stderr)
        return 1
    try:
        # The scheme is checked above; the URL is the operator's own service.
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_S) as response:  # noqa: S310
            status: int = response.status
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0


def database_command(command: str) -> int:
    """`db upgrade` or `db current`; 1 with the reason when the database cannot be reached."""
    # Imported here: `healthcheck`, run every few seconds, needs none of the database code.
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from nogil_bench.core.db import make_engine  # noqa: PLC0415
    from nogil_bench.core.logging import configure_logging  # noqa: PLC0415
    from nogil_bench.core.migrations import (  # noqa: PLC0415
        MigrationError,
        current_revision,
        head_revision,
        upgrade_database,
    )

    settings = get_settings()
    configure_logging(settings)
    engine = make_engine(settings)
    try:
        if command == "upgrade":
            upgrade_database(engine)
        with engine.connect() as connection:
            current = current_revision(connection)
    except (MigrationError, SQLAlchemyError) as error:
        print(f"database {command} failed: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        print(f"{current} (head)")
    else:
        print(f"{current or 'none'} (the newest is {head}: run `nogil-bench db upgrade`)")
    return 0


def admin_command(email: str, *, admin: bool) -> int:
    """`users admin EMAIL [--revoke]`; 1 when no user has that email."""
    from nogil_bench.auth.service import set_admin  # noqa: PLC0415 - as for `db`
    from nogil_bench.core.db import make_engine, wait_for_database  # noqa: PLC0415
    from nogil_bench.core.migrations import upgrade_database  # noqa: PLC0415

    settings = get_settings()
    engine = make_engine(settings)
    try:
        wait_for_database(engine, settings)
        upgrade_database(engine)
        found = set_admin(engine=engine, email=email, admin=admin)
    finally:
        engine.dispose()
    if not found:
        print(f"no user registered with {email!r}", file=sys.stderr)
        return 1
    print(f"{email} is {'now' if admin else 'no longer'} an admin")
    return 0


# Celery's processes: further arguments go to Celery's worker, or to Flower.
CELERY_COMMANDS = frozenset({"worker", "task-worker", "flower"})


def celery_command(args: argparse.Namespace, extra: Sequence[str]) -> None:
    """`worker`, `task-worker` and `flower`, until they are stopped. Their modules are
    imported here: Celery (and Flower) are only a worker's (and a monitor's) concern."""
    if args.command == "worker":
        from nogil_bench.distributed.worker import main as worker_main  # noqa: PLC0415

        worker_main(args.queues, extra)
    elif args.command == "task-worker":
        from nogil_bench.distributed.tasks import main as task_worker_main  # noqa: PLC0415

        task_worker_main(args.pool, args.concurrency, extra)
    else:
        from nogil_bench.distributed.flower import main as flower_main  # noqa: PLC0415

        flower_main(args.port, args.address, extra)


OPERATOR_COMMANDS = frozenset({"db", "users", "dead-letters"})


def operator_command(args: argparse.Namespace) -> int:
    """`db`, `users` and `dead-letters`: an exit code."""
    if args.command == "db":
        return database_command(args.db_command)
    if args.command == "users":
        return admin_command(args.email, admin=not args.revoke)
    # Imported here, as for `worker`.
    from nogil_bench.distributed.dead_letters import command  # noqa: PLC0415

    return command(
        args.dead_command,
        args.queues,
        limit=getattr(args, "limit", 0),
        ids=getattr(args, "ids", []),
        every=getattr(args, "all", False),
        as_json=args.json,
    )


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments and arguments[0] in MEASURING:
        # Imported here: the measuring CLI loads the engine, the service needs none of it.
        from nogil_bench.benchmarks.cli import main as measuring_main  # noqa: PLC0415

        sys.exit(measuring_main(arguments))
    runtime.watch_gil_reenablers()  # before any third-party import can turn the GIL on
    args, extra = build_parser().parse_known_args(arguments)
    if extra and args.command not in CELERY_COMMANDS:
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in CELERY_COMMANDS:
        celery_command(args, extra)
        return
    if args.command in OPERATOR_COMMANDS:
        sys.exit(operator_command(args))
    if args.command == "healthcheck":
        sys.exit(healthcheck(args.url))
    if args.command == "serve":
        server = args.server or default_server(reload=args.reload)
        if server == "uvicorn" and args.workers != 1:
            hint = "" if args.server else " (the default here: name --server gunicorn or granian)"
            build_parser().error(f"--server uvicorn serves from one process: --workers 1{hint}")
        if args.reload and server != "uvicorn":
            build_parser().error("--reload works with --server uvicorn only")
        # A requested stop is a success (exit 0): an orchestrator must not read it as a crash.
        # `serve` drains, then returns (or ends with os._exit(0) when it cut work short). A
        # signal during start-up, or any stop under --reload, goes through uvicorn's own
        # handling, which re-raises the signal at the end: these handlers make that exit 0.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, _exit_zero)
        if not args.reload:
            # Imported here: `healthcheck`, run every few seconds, needs none of the app.
            from nogil_bench.serving.dispatch import serve  # noqa: PLC0415

            try:
                serve(get_settings(), args.host, args.port, server=server, workers=args.workers)
            except ServingModeError as error:
                sys.exit(f"nogil-bench serve: {error}")
            return
        uvicorn.run(
            "nogil_bench.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            # h11 and asyncio, not httptools and uvloop: those would re-enable the GIL.
            http="h11",
            loop="asyncio",
            log_config=None,
            timeout_graceful_shutdown=get_settings().SHUTDOWN_GRACE_SECONDS,
            reload=True,
            reload_dirs=[str(Path(__file__).parent)],
        )


if __name__ == "__main__":
    main()
