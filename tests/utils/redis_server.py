"""A real Redis for the tests: Debian's `redis-server`, on a free port of 127.0.0.1, with
nothing saved to disk, in a temp directory; and `nogil-bench worker` processes around it."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import redis

from tests.utils.live_server import NOGIL_BENCH, free_port

INSTALL_HINT = "install Debian's server with `apt-get install redis-server` (.ci/run does)"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 60.0


class RedisServer:
    """`redis-server` daemonized on a free port; `stop()` shuts it down."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="nogil-bench-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "yes",
                "--dir", str(self.directory),
                "--pidfile", str(self.directory / "redis.pid"),
                "--logfile", str(self.directory / "redis.log"),
            ],
            check=True,
        )  # fmt: skip
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown(nosave=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )


class WorkerProcess:
    """`nogil-bench worker` (or `command`, e.g. a task worker) with only the given NOGIL_BENCH_*
    settings, its output in a file."""

    def __init__(
        self, workdir: Path, command: Sequence[str] = ("worker",), **settings: str
    ) -> None:
        self.command = list(command)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "worker.log"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("NOGIL_BENCH_")
        }
        self.env |= {
            "NOGIL_BENCH_DATA_DIR": str(workdir / "data"),
            "NOGIL_BENCH_LOG_FORMAT": "text",
        }
        self.metrics_port = free_port()
        self.env["NOGIL_BENCH_WORKER_METRICS_PORT"] = str(self.metrics_port)
        self.env |= {f"NOGIL_BENCH_{name}": value for name, value in settings.items()}
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [NOGIL_BENCH, *self.command],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S * 2
        while " ready." not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not get ready:\n{self.output()}")
            time.sleep(0.1)

    def metrics(self) -> str:
        """What its Prometheus endpoint serves."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            text: str = response.read().decode()
            return text

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: every thread stops where it is, until `thaw()` (or a kill)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM (Celery's warm shutdown), then the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
