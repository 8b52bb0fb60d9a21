"""Logging set-up, done once per process: loguru owns the output, stdlib loggers feed it.

Lines are JSON objects (one per line) or readable text, per `LOG_FORMAT`. Every line carries
what is known of its context: `request_id` and `user_id` within a request (set by the request
middleware and the auth dependency), and `job_id` / `batch_id` / `benchmark_id` for job work.
"""

import atexit
import inspect
import json
import logging
import os
import sys
import threading
import traceback
from contextvars import Context, ContextVar
from queue import Empty, SimpleQueue
from time import sleep  # bound here: a test patching `time.sleep` must not reach the thread
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


def add_request_fields(record: Record) -> None:
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


class LaterLines:
    """INFO lines handed to a thread of their own, which logs them in order through loguru.

    An access line through loguru (its record, the patcher, the JSON sink, the write) takes
    ~25 us of the event loop's thread on 3.14t, as much as the rest of a liveness request's
    middleware and routing together; here the loop pays a queue put and the work runs on
    another core. A line's `time` is when the thread logged it, normally a few milliseconds
    after the call. Past `MAX_WAITING` lines not yet logged, the caller logs its own
    line instead, so that a stalled stderr holds back requests (as it would without this
    thread) rather than memory. `flush()` returns once every line handed in before it has
    reached the sinks; the thread starts on first use in each process (a forked worker gets
    its own), and is flushed at exit."""

    MAX_WAITING = 10_000
    GATHER_S = 0.002
    FLUSH_TIMEOUT_S = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: SimpleQueue[tuple[str, dict[str, Any]] | threading.Event] = SimpleQueue()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    def info(self, message: str, fields: dict[str, Any]) -> None:
        """Logs `message` (a format string over `fields`) with `fields` as its extra."""
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            self._start()
        if self._queue.qsize() >= self.MAX_WAITING:
            logger.info(message, **fields)
            return
        self._queue.put((message, fields))

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """False if the lines were still not all logged after `timeout_s` (a stderr that
        no one reads): a stopping process then exits without them rather than hang."""
        if self._pid != os.getpid():
            return True  # nothing was handed in, in this process
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                # A forked child inherits the parent's queue, but not its thread: a new one.
                self._queue = SimpleQueue()
            # In an empty context: on a free-threaded build a thread inherits its starter's
            # (sys.flags.thread_inherit_context), and the patcher would give every line
            # the fields of the request that happened to start it.
            self._thread = threading.Thread(
                target=self._log, name="nogil-bench-log", daemon=True, context=Context()
            )
            self._thread.start()
            self._pid = os.getpid()

    def _log(self) -> None:
        while True:
            item = self._queue.get()
            # Lines handed in while this thread sleeps or logs find no one waiting, and cost
            # their caller no wake-up (a futex call, ~10 us of the loop's thread per line):
            # under load, one wake-up logs a batch.
            sleep(self.GATHER_S)
            while True:
                if isinstance(item, threading.Event):
                    item.set()
                else:
                    self._log_one(*item)
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break

    @staticmethod
    def _log_one(message: str, fields: dict[str, Any]) -> None:
        try:
            logger.info(message, **fields)
        except Exception as error:  # one bad line must not end the thread
            print(f"nogil-bench: an access line was not logged: {error!r}", file=sys.stderr)


LATER = LaterLines()
atexit.register(LATER.flush)


TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
    " <dim>{extra}</dim>"
)


def configure_logging(settings: Settings) -> None:
    logger.remove()
    logger.configure(patcher=add_request_fields)
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
