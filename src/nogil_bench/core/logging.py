"""Logging set-up, done once per process: loguru owns the output, stdlib loggers feed it."""

import inspect
import logging
import sys
from types import FrameType

from loguru import logger

from nogil_bench.core.config import Settings


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
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings) -> None:
    logger.remove()
    logger.add(sys.stderr, level=settings.LOG_LEVEL, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
