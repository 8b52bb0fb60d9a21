"""Logging set-up, done once per process: loguru owns the output, stdlib loggers feed it.

Lines are JSON objects (one per line) or readable text, per `LOG_FORMAT`. Every line carries
what is known of its context: `request_id` and `user_id` within a request (set by the request
middleware and the auth dependency), and `job_id` / `batch_id` / `benchmark_id` for job work.
"""

import inspect
import json
import logging
import sys
import traceback
from contextvars import ContextVar
from types import FrameType
from typing import TYPE_CHECKING, Any

from loguru import logger

from nogil_bench.core.config import API_PREFIX, Settings

if TYPE_CHECKING:
    from loguru import Message, Record

# Per-request fields, a mutable dict so that a dependency running in the thread pool (which
# gets a copy of the context, holding the same dict) can add the user id.
request_fields: ContextVar[dict[str, str] | None] = ContextVar("request_fields", default=None)


class InterceptHandler(logging.Handler):
    """Routes stdlib records (uvicorn, asyncio, ...) into loguru, keeping the caller's location."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None:
            filename = frame.f_code.co_filename
            in_logging = filename == logging.__file__ or (
                "importlib" in filename and "_bootstrap" in filename
            )
            if depth > 0 and not in_logging:
                break
            frame = frame.f_back
            depth += 1
        # The message goes in as an argument: formatted already, it may hold braces (Celery
        # logs a task's body with them), which loguru would read as replacement fields.
        logger.opt(depth=depth, exception=record.exc_info).bind(logger_name=record.name).log(
            level, "{}", record.getMessage()
        )


# Paths whose rest is a credential (a share link's token): logged without it, so that whoever
# reads the logs cannot open what was shared.
SECRET_PATH_PREFIXES = (f"{API_PREFIX}/shared/",)


def loggable_path(path: str) -> str:
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            return prefix + "[redacted]"
    return path


def _add_request_fields(record: Record) -> None:
    if fields := request_fields.get():
        record["extra"].update(fields)


def json_line(record: Record) -> str:
    """One log record as a JSON object."""
    extra = dict(record["extra"])
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": extra.pop("logger_name", record["name"]),
        "module": record["name"],
        "function": record["function"],
        "line": record["line"],
        **extra,
    }
    if record["exception"] is not None:
        error_type, error, trace = record["exception"]
        line["exception"] = "".join(traceback.format_exception(error_type, error, trace))
    return json.dumps(line, default=str)


def _json_sink(message: Message) -> None:
    sys.stderr.write(json_line(message.record) + "\n")


TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
    " <dim>{extra}</dim>"
)


def configure_logging(settings: Settings) -> None:
    logger.remove()
    logger.configure(patcher=_add_request_fields)
    if settings.LOG_FORMAT == "json":
        # The sink builds its line from the record; without a format of its own, loguru would
        # render its default text format (time, level, location) for every line, unread.
        logger.add(
            _json_sink,
            level=settings.LOG_LEVEL,
            format="{message}",
            backtrace=False,
            diagnose=False,
        )
    else:
        logger.add(
            sys.stderr,
            level=settings.LOG_LEVEL,
            format=TEXT_FORMAT,
            backtrace=False,
            diagnose=False,
        )
    # The standard library drops what is below the level itself, before building a record: at
    # level 0, uvicorn would also wrap the app in its MessageLoggerMiddleware (it does when
    # TRACE is enabled), and every ASGI message of every request would become a record, walked
    # by InterceptHandler and only then dropped by loguru (docs/serving.md, the request path).
    logging.basicConfig(
        handlers=[InterceptHandler()], level=logger.level(settings.LOG_LEVEL).no, force=True
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    # Our middleware writes one access line per request, with more in it than uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic narrates each context it opens; core/migrations.py logs what an upgrade did.
    logging.getLogger("alembic").setLevel(logging.WARNING)
