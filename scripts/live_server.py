"""`nogil-bench serve` processes that a script starts, measures, stops or kills.

with running_server(data_dir) as server:
    ...  # server.base_url answers /health/live here
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# Cheap accounts for load tests; a short drain so a stop does not wait for a long batch.
SERVER_ENV = {
    "NOGIL_BENCH_BCRYPT_ROUNDS": "4",
    "NOGIL_BENCH_LOG_LEVEL": "WARNING",
    "NOGIL_BENCH_LOG_FORMAT": "json",
    "NOGIL_BENCH_SHUTDOWN_GRACE_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """One `nogil-bench serve` on a free port of 127.0.0.1, its stderr in `log_path`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None,
        secret_key: str | None,
        log_path: Path,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = os.environ | SERVER_ENV | {"NOGIL_BENCH_DATA_DIR": str(data_dir)}
        if database_url is not None:
            env["NOGIL_BENCH_DATABASE_URL"] = database_url
        if secret_key is not None:  # servers that accept each other's tokens share one
            env["NOGIL_BENCH_SECRET_KEY"] = secret_key
        env |= {f"NOGIL_BENCH_{name}": value for name, value in (settings or {}).items()}
        command = [
            str(Path(sys.executable).with_name("nogil-bench")),
            "serve",
            "--port",
            str(self.port),
        ]
        with log_path.open("ab") as log:
            # Its own session: a Ctrl+C in the terminal reaches this script, which stops it.
            self.process = subprocess.Popen(  # noqa: S603 - our own console script
                command, env=env, stdout=log, stderr=log, start_new_session=True
            )
        self._last_cpu_s = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_live(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{self.base_url}/health/live", timeout=2).close()  # noqa: S310
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"the server on port {self.port} did not start (log: {self.log_path})"
                    ) from None
                time.sleep(0.2)

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the server has used; the last value once
        it is gone."""
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return self._last_cpu_s
        self._last_cpu_s = times.user + times.system
        return self._last_cpu_s

    def stop(self) -> int:
        """SIGTERM (the service drains), then its exit status; SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def kill(self) -> None:
        """kill -9 of the server and whatever it started (pool processes), no drain."""
        self.cpu_s()
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()


@contextmanager
def running_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    secret_key: str | None = None,
    log_path: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """A live server until the block ends, then stopped (or killed, if it does not stop)."""
    server = ServerProcess(
        data_dir,
        database_url=database_url,
        secret_key=secret_key,
        log_path=log_path or data_dir / "server.log",
        settings=settings,
    )
    try:
        server.wait_live()
        yield server
    finally:
        server.stop()
