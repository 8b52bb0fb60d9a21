"""The application factory. `nogil-bench serve` (server.py) runs it with the drain on SIGTERM;
`uvicorn --factory nogil_bench.main:create_app` works too, stopping the plain uvicorn way (the
socket closes first, then running work drains in the shutdown below)."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import fastapi
from anyio import to_thread
from fastapi import FastAPI
from loguru import logger
from sqlalchemy import Engine

from nogil_bench import __version__
from nogil_bench.auth import schemas as auth_schemas
from nogil_bench.auth.router import router as auth_router
from nogil_bench.auth.router import users_router
from nogil_bench.benchmarks.router import router as benchmarks_router
from nogil_bench.benchmarks.router import workloads_router
from nogil_bench.benchmarks.share_router import router as share_router
from nogil_bench.benchmarks.share_router import shared_router
from nogil_bench.core import fastapi_memo, metrics, runtime
from nogil_bench.core.config import API_PREFIX, Settings, get_settings
from nogil_bench.core.db import DatabaseUnavailableError, make_engine, wait_for_database
from nogil_bench.core.docs import OAUTH2_REDIRECT_URL, install_docs
from nogil_bench.core.errors import install_error_handler
from nogil_bench.core.limits import BodyLimit, BodySizeLimitMiddleware
from nogil_bench.core.logging import LATER, configure_logging
from nogil_bench.core.migrations import MigrationError, upgrade_database
from nogil_bench.core.nul import NulCharacterMiddleware
from nogil_bench.core.ratelimit import RateLimiter
from nogil_bench.core.reads import READS
from nogil_bench.core.requests import RequestContextMiddleware
from nogil_bench.distributed.router import router as admin_router
from nogil_bench.health.router import details_router, metrics_router
from nogil_bench.health.router import router as health_router
from nogil_bench.jobs import service as jobs_service
from nogil_bench.jobs.router import router as jobs_router
from nogil_bench.work.executor import Executor
from nogil_bench.work.queue import count_queues, recover_expired

# Room for the multipart framing and the text fields around the images.
FORM_OVERHEAD_BYTES = 1024 * 1024


def make_executor(engine: Engine, settings: Settings, boot_id: uuid.UUID) -> Executor:
    """The embedded executor, or with a broker the dispatcher that hands work to Celery."""
    if not settings.distributed:
        return Executor(engine, settings, boot_id)
    # Imported here: Celery loads only where a broker is configured.
    from nogil_bench.distributed.celery_app import make_celery  # noqa: PLC0415
    from nogil_bench.distributed.dispatch import Dispatcher  # noqa: PLC0415

    logger.info("broker configured: queued work goes to Celery workers (`nogil-bench worker`)")
    return Dispatcher(engine, settings, boot_id, make_celery(settings))


OPENAPI_TAGS = [
    {"name": "health", "description": "Liveness, readiness, details and metrics"},
    {"name": "auth", "description": "Register, and log in for a bearer token"},
    {"name": "users", "description": "The logged-in user"},
    {"name": "jobs", "description": "Image jobs and batches: submit, follow, fetch, cancel"},
    {"name": "benchmarks", "description": "Runners measured side by side, and their reports"},
    {"name": "shared", "description": "A report shared by link, read without logging in"},
    {"name": "admin", "description": "For operators: the dead letters of the worker fleet"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    if not fastapi_memo.install():
        logger.warning(
            "FastAPI {} is not the release core/fastapi_memo.py was read against ({}): each "
            "request works out its parameters' facts again",
            fastapi.__version__,
            fastapi_memo.FASTAPI_VERSION,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        logger.info(
            "nogil-bench {} starting on Python {} (free-threaded build: {}, GIL enabled: {}, "
            "{} CPUs), data in {}",
            __version__,
            runtime.python_version(),
            runtime.is_free_threaded_build(),
            runtime.is_gil_enabled(),
            runtime.cpu_count(),
            settings.DATA_DIR.resolve(),
        )
        if warning := runtime.gil_warning():
            logger.warning(warning)
        if settings.ENVIRONMENT == "production" and settings.METRICS_TOKEN is None:
            logger.warning(
                "GET /metrics answers anyone who reaches this port: fine on a private network "
                "that Prometheus scrapes; otherwise set NOGIL_BENCH_METRICS_TOKEN"
            )
        if settings.secret_generated:
            logger.warning(
                "no NOGIL_BENCH_SECRET_KEY set: generated one for this process (development "
                "mode); tokens stop working when it restarts"
            )
        # Blocking request work (sync routes, uploads, writes) runs on this many threads; the
        # database pool has a connection for each (settings.db_pool_size).
        to_thread.current_default_thread_limiter().total_tokens = settings.WORKER_THREADS
        READS.resize(settings.read_threads)  # and the short reads, on threads of their own
        engine = make_engine(settings)
        try:
            wait_for_database(engine, settings)
            upgrade_database(engine)
        except (DatabaseUnavailableError, MigrationError) as error:
            logger.critical("cannot start: {}", error)
            raise
        # Names this process on the rows it runs, and on every log line from here on.
        boot_id = uuid.uuid7()
        logger.configure(extra={"boot_id": str(boot_id)})
        logger.info("boot {} (pid {})", boot_id, os.getpid())
        recover_expired(engine, settings.MAX_ATTEMPTS)
        executor = make_executor(engine, settings, boot_id)
        app.state.engine = engine
        metrics.STORE.configure(
            partial(jobs_service.count_for_metrics, engine),
            partial(count_queues, engine),
            executor.queue_depths if settings.distributed else None,
            settings.METRICS_CACHE_SECONDS,
        )
        app.state.executor = executor
        app.state.draining = False
        executor.start()
        yield
        # `nogil-bench serve` drains on the signal, while still listening (see server.py);
        # this drain covers every other way of stopping, and returns at once after that one.
        app.state.draining = True
        app.state.executor.drain(settings.SHUTDOWN_GRACE_SECONDS)
        engine.dispose()
        LATER.flush()  # the last requests' access lines before the last line
        logger.info("nogil-bench stopped")

    app = FastAPI(
        title="nogil-bench",
        version=__version__,
        description="CPU-bound image jobs on pluggable concurrency runners, measured side by "
        "side on free-threaded CPython 3.14. Register, then Authorize with your email and "
        "password.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        # The order Swagger UI shows the sections in, whatever order the routes are tried in.
        openapi_tags=OPENAPI_TAGS,
        # FastAPI's own OpenTelemetry hooks: off, as nothing here exports spans (metrics are
        # Prometheus's, at /metrics). On, each request asks OpenTelemetry for its providers.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter()
    install_error_handler(app)
    # Inside the body limit, so it never sees more of a body than the route allows.
    app.add_middleware(NulCharacterMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        limits={
            ("POST", f"{API_PREFIX}/jobs"): BodyLimit(
                settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES,
                "one image of NOGIL_BENCH_MAX_UPLOAD_BYTES and 1 MiB of form",
            ),
            ("POST", f"{API_PREFIX}/batches"): BodyLimit(
                settings.MAX_BATCH_REQUEST_BYTES,
                "the whole batch, NOGIL_BENCH_MAX_BATCH_REQUEST_BYTES",
            ),
            ("POST", f"{API_PREFIX}/auth/register"): BodyLimit(
                auth_schemas.MAX_BODY_BYTES, "an email and a password of at most 1024 characters"
            ),
            ("POST", f"{API_PREFIX}/auth/token"): BodyLimit(
                auth_schemas.MAX_BODY_BYTES, "an email and a password of at most 1024 characters"
            ),
        },
    )
    # Added last, so outermost: even a refused body gets a request id and an access line.
    app.add_middleware(RequestContextMiddleware, slow_request_ms=settings.SLOW_REQUEST_MS)
    # FastAPI tries the routes in the order they are added, and the first that matches answers:
    # the most asked come first (docs/serving.md, "Routes in the order they are asked"). The
    # health probes, then the user and the job reads every client polls, then logging in, the
    # rest of the API, and last what an operator or a person asks now and then: metrics, docs.
    # (FastAPI adds `/openapi.json` before all of them.)
    app.include_router(health_router)
    # Each included in the app itself, not through one `/api/v1` router: FastAPI matches a
    # request against every level of included routers, twice in the level that holds its route.
    for router in (
        users_router,
        jobs_router,
        auth_router,
        benchmarks_router,
        share_router,
        shared_router,
        workloads_router,
        details_router,
        admin_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    install_docs(app)
    return app
