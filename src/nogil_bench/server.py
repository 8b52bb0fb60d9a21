"""`nogil-bench serve --server uvicorn` (the default with the GIL on, and under `--reload`):
uvicorn, with a drain between the stop signal and the closed socket. Every serving mode stops
through `Drain` (nogil_bench.serving).

On SIGTERM or SIGINT, plain uvicorn closes its listening socket first and runs the app's
shutdown last, so a client could only find the port closed. Here the first signal starts a
drain while the service still listens:

1. readiness turns 503 and submissions get 503 with `Retry-After` (`app.state.draining`);
2. the executor takes no more work; what runs may finish within `SHUTDOWN_GRACE_SECONDS`;
3. what still runs then goes back to the queue (a second signal cuts the wait short);
4. uvicorn closes the socket, lets in-flight requests finish in the time left, runs the app's
   shutdown, and the process exits 0.

Each step is logged. Work cut short by the deadline may still occupy pool threads or
processes; its rows are already back in the queue, so the process ends without waiting for it.
"""

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import psutil
import uvicorn
from fastapi import FastAPI
from loguru import logger

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from nogil_bench.work.executor import Executor

CHILD_STOP_TIMEOUT_S = 3.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The drain a stop signal starts while the server still listens, on a thread of its own;
    `close_listener(in_flight_s)` is called at its end, with the time left for in-flight
    requests. Every serving mode (uvicorn, each Gunicorn worker, Granian) stops through it."""

    def __init__(
        self, app: FastAPI, settings: Settings, close_listener: Callable[[float], None]
    ) -> None:
        self.app = app
        self.settings = settings
        self.close_listener = close_listener
        self._signal_name = ""
        self._thread: threading.Thread | None = None
        self._cut_short = threading.Event()

    def on_signal(self, sig: int) -> bool:
        """Called from a signal handler: the first signal starts the drain, a second one cuts
        its wait short. False once the drain is over: the server's own handling applies."""
        # It only sets flags and starts a thread. Logging or database work here could
        # deadlock on a lock the interrupted code holds.
        if self._thread is not None:
            if not self._thread.is_alive():
                return False
            self._cut_short.set()  # stop waiting for running work
            return True
        self.app.state.draining = True
        self._signal_name = signal.Signals(sig).name
        self._thread = threading.Thread(target=self._drain, name="nogil-bench-drain", daemon=True)
        self._thread.start()
        return True

    def _drain(self) -> None:
        grace_s = self.settings.SHUTDOWN_GRACE_SECONDS
        deadline = time.monotonic() + grace_s
        logger.info(
            "{} received: draining; readiness is 503 and new work is refused with 503 "
            "(send the signal again to stop without waiting)",
            self._signal_name,
        )
        try:
            self.app.state.executor.drain(grace_s, self._cut_short)
        except Exception:  # the database went away, say: stop anyway, and say so
            logger.exception("the drain failed; stopping without it")
        in_flight_s = max(1.0, deadline - time.monotonic())
        logger.info("closing the listener; in-flight requests have {:.0f} s", in_flight_s)
        self.close_listener(in_flight_s)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, settings: Settings) -> None:
        super().__init__(config)
        self.app = app
        self._drain = Drain(app, settings, self._close_listener)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if getattr(self.app.state, "executor", None) is None:
            # Still starting: plain uvicorn. It stops right after start-up, and the app's
            # shutdown drains what the executor took meanwhile (without the 503 phase).
            super().handle_exit(sig, frame)
        elif not self._drain.on_signal(sig):
            super().handle_exit(sig, frame)  # uvicorn's own: a second Ctrl+C force-quits

    def _close_listener(self, in_flight_s: float) -> None:
        self.config.timeout_graceful_shutdown = math.ceil(in_flight_s)
        self.should_exit = True


def serve(settings: Settings, host: str, port: int) -> None:
    """Runs the service until a signal has drained it; exits 0 then, non-zero on failure."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # h11 and asyncio, not httptools and uvloop: those would re-enable the GIL.
        http="h11",
        loop="asyncio",
        log_config=None,
        timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
    )
    # A failed start-up exits here, with uvicorn's status 3.
    DrainingServer(config, app, settings).run()
    exit_at_once_if_work_was_cut_short(app)


def exit_at_once_if_work_was_cut_short(app: FastAPI) -> None:
    """After the server stopped: when the drain gave up on running work, its rows are back in
    the queue, and what still computes them is stopped, not awaited (os._exit(0))."""
    executor: Executor | None = getattr(app.state, "executor", None)
    if executor is None or executor.drained is not False:
        return
    for stop_signal in STOP_SIGNALS:  # nor interrupted: os._exit must be reached
        signal.signal(stop_signal, signal.SIG_IGN)
    stopped = stop_child_processes()
    logger.info("exiting without waiting for work cut short ({} pool processes stopped)", stopped)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def stop_child_processes() -> int:
    """Terminates this process's pool workers and forkserver, killing those that outlive the
    timeout; returns how many there were. multiprocessing's resource tracker is left alone: it
    ignores SIGTERM by design, and exits by itself after this process, cleaning up after it."""
    children = [
        child
        for child in psutil.Process().children(recursive=True)
        if not is_resource_tracker(child)
    ]
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=CHILD_STOP_TIMEOUT_S)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    return len(children)


def is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return any("resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False
