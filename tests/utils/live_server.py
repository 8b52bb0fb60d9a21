"""A real `nogil-bench serve` in its own process, for tests that need signals, restarts or a
browser: started with only the settings a test gives, its output kept in a file.

These servers use the default SQLite database (tests/e2e reads its file directly); the
PostgreSQL runs of the suite go through in-process apps (the `settings` fixture)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

NOGIL_BENCH = Path(sys.executable).with_name("nogil-bench")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveServer:
    """`nogil-bench serve` on a free port, with `workdir/data` as its data directory.

    Only the given NOGIL_BENCH_* settings apply (none are inherited from the caller; PYTHON_GIL
    is), and it runs in `workdir`, away from a developer's .env. `start()` may be called again
    after it stopped: a restart on the same data and port. `server` and `workers` choose the
    serving mode (`serve --server --workers`); by default, `serve`'s own: one Granian worker
    thread with the GIL off, one uvicorn process with it on.
    """

    def __init__(
        self, workdir: Path, *, server: str | None = None, workers: int = 1, **settings: str
    ) -> None:
        self.workdir = workdir
        self.server = server
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("NOGIL_BENCH_")
        }
        self.env |= {
            "NOGIL_BENCH_DATA_DIR": str(workdir / "data"),
            "NOGIL_BENCH_ARGON2_TIME_COST": "1",
            "NOGIL_BENCH_ARGON2_MEMORY_KIB": "8",
            "NOGIL_BENCH_ENVIRONMENT": "development",
        }
        self.env |= {f"NOGIL_BENCH_{name}": value for name, value in settings.items()}
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        # Output goes to a file, not a pipe nobody reads while the test runs (a full pipe
        # blocks the server). Restarts append, so the file tells the whole story.
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    NOGIL_BENCH,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *([] if self.server is None else ["--server", self.server]),
                    *([] if self.workers == 1 else ["--workers", str(self.workers)]),
                ],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                # Its own process group: a signal sent to the group reaches its pool workers
                # too, as Ctrl+C in a terminal would.
                start_new_session=True,
            )
        self.wait_until_live()

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text()

    def signal_state(self) -> str:
        """Each thread's pending, blocked and caught signal masks (Linux's /proc), for a test
        that failed waiting on a signal's effect: was it pending, blocked, or taken?"""
        fields = ("Name", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
        lines = []
        for status in sorted(Path(f"/proc/{self.pid}/task").glob("*/status")):
            with contextlib.suppress(OSError):  # the thread ended meanwhile
                values = dict(
                    line.split(":\t", 1)
                    for line in status.read_text().splitlines()
                    if ":\t" in line
                )
                shown = " ".join(f"{field}={values.get(field, '?').strip()}" for field in fields)
                lines.append(f"thread {status.parent.name}: {shown}")
        return "\n".join(lines) or f"no /proc/{self.pid}/task"

    def wait_until_live(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                status = httpx2.get(f"{self.url}/health/live", timeout=1).status_code
            except httpx2.TransportError:
                status = None
            if status == 200:
                return
            time.sleep(0.05)
        pytest.fail(
            f"{self.url}/health/live did not answer 200 within {START_TIMEOUT_S:.0f} s "
            f"(last status: {status}); the server's output:\n{self.output()}"
        )

    def send(self, stop_signal: signal.Signals, *, to_group: bool = False) -> None:
        if to_group:
            os.killpg(self.pid, stop_signal)
        else:
            os.kill(self.pid, stop_signal)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The exit status; fails the test, with the output, if it does not exit in time."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the server did not exit within {timeout_s:.0f} s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.send(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        """SIGKILL to the server alone, as the OOM killer would send it: no drain, no clean-up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_all(self) -> None:
        """SIGKILL to its whole process group: the server and any pool worker it left."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
