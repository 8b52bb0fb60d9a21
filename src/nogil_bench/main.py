"""The application factory: `uvicorn --factory nogil_bench.main:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from loguru import logger

from nogil_bench import __version__
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings, get_settings
from nogil_bench.core.logging import configure_logging
from nogil_bench.health.router import router as health_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

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
        yield
        logger.info("nogil-bench stopped")

    app = FastAPI(title="nogil-bench", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.include_router(health_router)
    return app
