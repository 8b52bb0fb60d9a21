"""`nogil-bench serve` and `nogil-bench worker` processes, and the redis-server they share,
that a script starts, measures, stops or kills.

with running_server(data_dir) as server:
    ...  # server.base_url answers /health/live here
with redis_server() as broker_url:
    worker = Worker("worker-a", workdir, {"BROKER_URL": broker_url})
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

NOGIL_BENCH = Path(sys.executable).with_name("nogil-bench")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# Cheap accounts, as many as a load test makes from one address; a short drain so a stop does
# not wait for a long batch.
SERVER_ENV = {
    "NOGIL_BENCH_ARGON2_TIME_COST": "1",
    "NOGIL_BENCH_ARGON2_MEMORY_KIB": "8",
    "NOGIL_BENCH_REGISTER_RATE_LIMIT": "10000/minute",
    "NOGIL_BENCH_LOG_LEVEL": "WARNING",
    "NOGIL_BENCH_LOG_FORMAT": "json",
    "NOGIL_BENCH_SHUTDOWN_GRACE_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnProcess:
    """A process this script started in a session of its own (a Ctrl+C in the terminal
    reaches the script, which stops it): its CPU time, its stop, and kill -9."""

    def __init__(
        self, command: Sequence[str | Path], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own console script
                command, env=env, stdout=log, stderr=log, start_new_session=True
            )
        self._last_cpu_s = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) it has used; the last value once it is
        gone."""
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return self._last_cpu_s
        self._last_cpu_s = times.user + times.system
        return self._last_cpu_s

    def stop(self) -> int:
        """SIGTERM (a server drains, a worker shuts down warm), then its exit status; SIGKILL
        if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def kill(self) -> None:
        """kill -9 of it and whatever it started (pool processes): no drain, no shutdown."""
        self.cpu_s()
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()


class ServerProcess(OwnProcess):
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
        env = os.environ | SERVER_ENV | {"NOGIL_BENCH_DATA_DIR": str(data_dir)}
        if database_url is not None:
            env["NOGIL_BENCH_DATABASE_URL"] = database_url
        if secret_key is not None:  # servers that accept each other's tokens share one
            env["NOGIL_BENCH_SECRET_KEY"] = secret_key
        env |= {f"NOGIL_BENCH_{name}": value for name, value in (settings or {}).items()}
        command: list[str | Path] = [NOGIL_BENCH, "serve", "--port", str(self.port)]
        super().__init__(command, env, log_path)

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


# The --broker-url option of the scripts that start a redis-server unless given one.
BROKER_URL_HELP = (
    "this broker (e.g. a RabbitMQ, amqp://...) instead of a redis-server of the script's; it "
    "must be empty, and is not stopped"
)


@contextmanager
def service_with_broker(
    work: Path, broker_url: str | None, settings: Mapping[str, str]
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A live server on SQLite in `work`/service with `broker_url` (or a redis-server of its
    own) and `settings`, and the settings its workers need, until the block ends."""
    with ExitStack() as stack:
        cluster = {
            "BROKER_URL": broker_url or stack.enter_context(redis_server()),
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{work / 'service' / 'nogil_bench.db'}",
            **settings,
        }
        (work / "service").mkdir()
        yield (
            stack.enter_context(
                running_server(work / "service", settings=cluster, database_url=None)
            ),
            cluster,
        )


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="bench-workers-redis-"))
    subprocess.run(  # noqa: S603 - Debian's redis-server
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--daemonize", "yes", "--dir", str(directory), "--logfile", str(directory / "log")],
        check=True,
    )  # fmt: skip
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run(  # noqa: S603
            [Path(binary).with_name("redis-cli"), "-p", str(port), "shutdown", "nosave"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(directory, ignore_errors=True)


class Worker(OwnProcess):
    """`nogil-bench worker` (or `command`, e.g. a task worker) with the given settings, its
    output in a file."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        settings: dict[str, str],
        command: Sequence[str] = ("worker",),
    ) -> None:
        workdir.mkdir(parents=True)
        self.name = name
        env = os.environ | {
            "NOGIL_BENCH_WORKER_METRICS_PORT": "0",
            "NOGIL_BENCH_LOG_FORMAT": "text",
        }
        env |= {f"NOGIL_BENCH_{key}": value for key, value in settings.items()}
        env |= {
            "NOGIL_BENCH_DATA_DIR": str(workdir),
            "NOGIL_BENCH_WORKER_NAME": name,
            "NOGIL_BENCH_LOG_LEVEL": "INFO",  # its "ready." line says it consumes
        }
        super().__init__([NOGIL_BENCH, *command], env, workdir / "worker.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        while " ready." not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {name} did not start (log: {self.log_path})")
            time.sleep(0.2)

    @property
    def node(self) -> str:
        """Celery's node name for it (`--hostname`)."""
        return f"celery@{self.name}"

    def peak_rss_bytes(self) -> int:
        """VmHWM of the worker and of its children still alive."""
        total = 0
        process = psutil.Process(self.process.pid)
        for member in [process, *process.children(recursive=True)]:
            status = Path(f"/proc/{member.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        return total
