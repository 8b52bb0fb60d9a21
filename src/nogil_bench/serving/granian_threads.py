"""`nogil-bench serve --server granian --workers N`: Granian's N workers, which on a
free-threaded build are threads of one process, each with its own event loop, sharing one app.

Granian would send each worker loop the app's ASGI lifespan, starting the app N times in one
process (N executors, each replacing the last in `app.state`). So the app's lifespan runs once,
on a thread of its own (`AppLifespan`), before the workers start and after they stopped; each
worker's own lifespan only sizes its loop's thread pool (`WorkerLoops`).

On SIGTERM (or SIGINT) Granian would stop its workers at once. `DrainingGranian` drains first,
as `--server uvicorn` does (nogil_bench.server.Drain), while the workers still serve; then
Granian stops them, the app's shutdown runs, and the process exits 0.

Granian's main thread waits for a signal on a `threading.Event` without a timeout. The kernel
may deliver SIGTERM to any thread of the process (a busy worker, a Tokio or pool thread): the
C-level handler then only flags it, and the Python handler runs once the main thread executes
bytecode again, which a wait without timeout never does (CPython issue #85300). Under load
the signal was then lost, and the process never stopped. `MainLoopInterrupt` waits in slices.
"""

import asyncio
import threading
import time
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from granian.constants import Interfaces, Loops
from granian.server.mt import MTServer
from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from nogil_bench.server import Drain, exit_at_once_if_work_was_cut_short
from nogil_bench.serving import ServingModeError

# Granian's own log lines go to the root logger, which the app's logging set-up owns.
GRANIAN_LOGGING = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}


# How long a stop signal delivered to another thread may wait for the main thread's handler.
SIGNAL_POLL_S = 0.1


class MainLoopInterrupt(threading.Event):
    """Granian's `main_loop_interrupt`, waited on by its main loop: `wait()` returns to the
    interpreter every SIGNAL_POLL_S, so that Python signal handlers run even when the kernel
    delivered the signal to another thread.

    Those handlers run on the main thread between two bytecodes, possibly while it holds this
    event's lock inside `wait()`: from a handler, `set_soon()`, which takes no lock (`set()`
    would deadlock); the waiting loop sets the event itself within SIGNAL_POLL_S."""

    def __init__(self) -> None:
        super().__init__()
        self._set_soon = False

    def set_soon(self) -> None:
        self._set_soon = True

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._set_soon:
                self._set_soon = False
                self.set()
            slice_s = SIGNAL_POLL_S
            if deadline is not None:
                slice_s = min(slice_s, deadline - time.monotonic())
                if slice_s <= 0:
                    return self.is_set()
            if super().wait(slice_s):
                return True


class WorkerLoops:
    """The app, behind the lifespan each Granian worker sends its loop: a sync route runs on
    the thread pool of the loop that received it, and those pools share one database pool of
    WORKER_THREADS connections (and some for the executor), so each loop gets its share."""

    def __init__(self, app: ASGIApp, threads_per_loop: int) -> None:
        self.app = app
        self.threads_per_loop = threads_per_loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                limiter = to_thread.current_default_thread_limiter()
                limiter.total_tokens = self.threads_per_loop
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class AppLifespan:
    """The app's lifespan on a thread and event loop of its own: `start()` returns once the app
    has started (or raises why it could not), `stop()` once its shutdown has run."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(),), name="nogil-bench-lifespan"
        )

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with self.app.router.lifespan_context(self.app):
                self._started.set()
                await self._stop.wait()
        except BaseException as error:  # handed to start(), in the main thread
            self._error = error
        finally:
            self._started.set()

    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


class DrainingGranian(MTServer):
    """Granian's free-threaded server, draining on the first stop signal before it stops."""

    def __init__(self, app: FastAPI, settings: Settings, **options: Any) -> None:
        super().__init__(**options)
        self._interrupt = MainLoopInterrupt()
        self.main_loop_interrupt = self._interrupt
        self._drain = Drain(app, settings, self._close_listener)

    # Granian's signal handlers, on the main thread: they take no lock (MainLoopInterrupt).

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        if not self._drain.on_signal(args[0]):
            self.interrupt_signal = True
            self._interrupt.set_soon()

    def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
        self.reload_signal = True
        self._interrupt.set_soon()

    def _check_gil(self) -> None:
        # Granian reads the GIL's state once, as it starts its workers. By then the app has
        # started, and its executor may be running work whose first import of a C extension
        # turns the GIL on for a moment: fail only if it stays on.
        if runtime.gil_stays_enabled():
            super()._check_gil()  # type: ignore[no-untyped-call]

    def _close_listener(self, in_flight_s: float) -> None:
        # On the drain's thread: Granian's own handling. Its main loop stops the workers, each
        # finishing its in-flight requests. (Granian's methods are unannotated.)
        super().signal_handler_interrupt()  # type: ignore[no-untyped-call]


def check_interpreter() -> None:
    """Granian's worker threads need a free-threaded build running with the GIL off."""
    if not runtime.is_free_threaded_build():
        raise ServingModeError(
            "--server granian needs a free-threaded build (its workers are threads there); "
            "use --server gunicorn for worker processes"
        )
    if runtime.is_gil_enabled():
        raise ServingModeError(
            "Granian refuses to run a free-threaded build with the GIL on "
            f"({runtime.gil_forced_on_by() or 'an extension module turned it on'}); "
            "use --server uvicorn or gunicorn"
        )


def serve_with_granian(settings: Settings, host: str, port: int, *, workers: int) -> None:
    """Runs Granian's worker threads until a stop signal has drained the app; returns then."""
    check_interpreter()
    app = create_app(settings)
    server = DrainingGranian(
        app,
        settings,
        target="nogil_bench.main:create_app",  # only named: the app is given to serve()
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.asyncio,
        websockets=False,
        log_dictconfig=GRANIAN_LOGGING,
        log_access=False,  # the app's middleware writes one access line per request
    )
    lifespan = AppLifespan(app)
    try:
        lifespan.start()
        threads_per_loop = max(1, settings.WORKER_THREADS // workers)
        logger.info(
            "granian: {} worker thread{}, each with {} threads for blocking request work",
            workers,
            "" if workers == 1 else "s",
            threads_per_loop,
        )
        server.serve(target_loader=lambda: WorkerLoops(app, threads_per_loop), wrap_loader=False)
    finally:
        lifespan.stop()
    exit_at_once_if_work_was_cut_short(app)
