"""`nogil-bench serve --server gunicorn --workers N`: Gunicorn's arbiter forks N worker
processes, each running uvicorn (h11 and asyncio, as `--server uvicorn`: httptools and uvloop
would turn the GIL on) with the whole app, its own executor included.

The processes share only the database: each executor claims work under a lease, as two
`nogil-bench serve` processes on one database do. Rate-limit windows and metrics are each
process's own (docs/serving.md).

On SIGTERM the arbiter sends SIGTERM to every worker, and each drains as `--server uvicorn`
does (nogil_bench.server.Drain) while it still accepts connections on the shared socket; the
arbiter waits for them up to the grace period and some, then exits 0.
"""

import sys
from typing import Any

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornH11Worker

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from nogil_bench.server import DrainingServer, exit_at_once_if_work_was_cut_short

# Past the drain's grace period: the in-flight requests' last second, the app's shutdown, and
# stopping pool processes after a cut-short drain (server.CHILD_STOP_TIMEOUT_S).
ARBITER_MARGIN_S = 10


class DrainingUvicornWorker(UvicornH11Worker):  # type: ignore[misc]  # untyped: no py.typed
    """One Gunicorn worker: uvicorn on h11 and asyncio, draining on SIGTERM."""

    wsgi: FastAPI  # the app Gunicorn loaded in this worker (ServiceApplication.load)

    async def _serve(self) -> None:
        app = self.wsgi
        settings: Settings = app.state.settings
        self.config.app = app
        self.config.timeout_graceful_shutdown = settings.SHUTDOWN_GRACE_SECONDS
        server = DrainingServer(self.config, app, settings)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def run(self) -> None:
        super().run()
        exit_at_once_if_work_was_cut_short(self.wsgi)


class ServiceApplication(BaseApplication):
    """Gunicorn configured from nogil-bench's settings, not from its command line or files."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> FastAPI:
        # In each worker, after the fork: every process has its own engine and executor.
        return create_app(self.settings)


def gunicorn_options(settings: Settings, host: str, port: int, workers: int) -> dict[str, Any]:
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "worker_class": DrainingUvicornWorker,
        "graceful_timeout": settings.SHUTDOWN_GRACE_SECONDS + ARBITER_MARGIN_S,
        "keepalive": 5,  # uvicorn's own default, as `--server uvicorn` serves
        "loglevel": settings.LOG_LEVEL.lower(),
        "accesslog": None,  # the app's middleware writes one access line per request
        "proc_name": "nogil-bench",
        "control_socket_disable": True,  # nothing uses it; it would be a file in $HOME
    }


def serve_with_gunicorn(settings: Settings, host: str, port: int, *, workers: int) -> None:
    """Runs the arbiter until SIGTERM has drained every worker; it exits the process itself."""
    ServiceApplication(settings, gunicorn_options(settings, host, port, workers)).run()
