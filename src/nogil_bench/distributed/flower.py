"""`nogil-bench flower`: Flower, Celery's monitor, on the service's broker: the workers, what
each runs and has run, from the task events they send (`nogil-bench worker` sends them).

Flower 2.2 and its web stack (Tornado 6.6, whose one extension module declares free-threading
support) keep the GIL off on 3.14t, so Flower runs on the same interpreter and image as the
rest. `/metrics` (Flower's, open like its `/healthcheck`) also carries nogil_bench_gil_enabled,
read at each scrape, which tells that it stays off while Flower serves.

A monitor, not a remote control: Flower runs with `--read-only` (no worker shutdown, pool
change, revocation or task sent around the service's API: the database, not the broker, is
the record of the service's work). Its HTTP API (`/api/*`) answers 401 until Flower's own
authentication is set, e.g. FLOWER_BASIC_AUTH=user:password (Flower reads its FLOWER_*
variables itself); nothing here sets FLOWER_UNAUTHENTICATED_API.
"""

import os
import sys
from collections.abc import Sequence

import click
import prometheus_client
from celery import Celery
from celery.bin.base import CLIContext
from flower.command import apply_env_options, apply_options
from flower.command import flower as flower_command
from flower.utils import strtobool
from loguru import logger
from tornado.options import Error as OptionError
from tornado.options import options as flower_options

from nogil_bench.core import metrics, runtime
from nogil_bench.core.config import get_settings
from nogil_bench.core.logging import configure_logging
from nogil_bench.distributed.celery_app import make_celery

PROG = "nogil-bench flower"


# Tasks Flower keeps in memory (its default is 100,000): the newest, enough to follow a
# batch; the database keeps the record of every job.
MAX_TASKS = 10_000


def flower_argv(port: int, address: str, argv: Sequence[str] = ()) -> list[str]:
    """Flower's options: where it listens, read-only, at most MAX_TASKS tasks in memory, its
    logging left to ours (`--logging=none`: Tornado then leaves the root logger, which feeds
    loguru, as it is); `argv` comes last, so that an operator's options win (e.g.
    `--read-only=false` gives the controls back)."""
    return [
        f"--port={port}",
        f"--address={address}",
        "--read-only",
        f"--max-tasks={MAX_TASKS}",
        "--logging=none",
        *argv,
    ]


def api_access() -> str:
    """Who may read Flower's API, with the options Flower applied (FLOWER_* variables, then
    the command line)."""
    if flower_options.auth or flower_options.basic_auth:
        return "with Flower's authentication"
    if strtobool(os.environ.get("FLOWER_UNAUTHENTICATED_API") or "false"):
        return "by anyone (FLOWER_UNAUTHENTICATED_API)"
    return "by no one (401): set FLOWER_BASIC_AUTH=user:password to open it"


def run_flower(celery: Celery, argv: Sequence[str]) -> None:
    """Flower's own command (what `celery flower` runs) with `argv`, under a bare command
    group instead of the `celery` command line: that one imports click-repl and prompt_toolkit,
    which the production image does not ship (see worker.run_celery_worker). Returns on
    SIGTERM or SIGINT."""
    group = click.Group("nogil-bench", commands=[flower_command])
    group.main(
        args=["flower", *argv],
        prog_name="nogil-bench",
        standalone_mode=False,
        obj=CLIContext(
            app=celery, no_color=bool(os.environ.get("NO_COLOR")), workdir=None, quiet=False
        ),
    )


def main(port: int, address: str, argv: Sequence[str] = ()) -> None:
    """Runs Flower for the broker of NOGIL_BENCH_BROKER_URL on `address`:`port` until SIGTERM
    or SIGINT; `argv` goes to Flower (e.g. `--basic-auth=user:password`, `--url-prefix=flower`)."""
    settings = get_settings()
    configure_logging(settings)
    if settings.BROKER_URL is None:
        sys.exit(
            f"{PROG}: set NOGIL_BENCH_BROKER_URL (redis://host:port/db or "
            "amqp://user:password@host:port/vhost): Flower watches the workers' broker"
        )
    if warning := runtime.gil_warning():
        logger.warning("{}", warning)
    # The GIL's state at each scrape of Flower's /metrics (its default registry).
    prometheus_client.REGISTRY.register(metrics.StoreCollector())
    arguments = flower_argv(port, address, argv)
    try:  # Flower applies them again itself; here to refuse a bad one and report the rest
        apply_env_options()
        apply_options(PROG, arguments)
    except (OptionError, ValueError) as error:
        sys.exit(f"{PROG}: {error}")
    logger.info(
        "flower (pid {}) on Python {}, GIL enabled: {}; read-only: {}; API readable {}",
        os.getpid(),
        runtime.python_version(),
        runtime.is_gil_enabled(),
        flower_options.read_only,
        api_access(),
    )
    run_flower(make_celery(settings), arguments)
