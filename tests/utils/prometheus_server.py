"""A real Prometheus for the tests: Debian's `prometheus` on a free port of 127.0.0.1, scraping
the given targets every second, its configuration and its data in a temp directory (nothing of
/etc/prometheus or /var/lib/prometheus is read or written)."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
import yaml

from tests.utils.live_server import free_port
from tests.utils.waiting import wait_until

INSTALL_HINT = "install Debian's server with `apt-get install prometheus` (.ci/run does)"
SCRAPE_INTERVAL = "1s"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 10.0


class PrometheusServer:
    """`prometheus` on a free port, scraping `/metrics` of each job's targets ("host:port")
    every second; `stop()` shuts it down and removes its files."""

    def __init__(self, binary: str, jobs: Mapping[str, Sequence[str]]) -> None:
        self.binary = binary
        self.jobs = {name: list(targets) for name, targets in jobs.items()}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="nogil-bench-prometheus-"))
        self.log_path = self.directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
            },
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": targets}]}
                for name, targets in self.jobs.items()
            ],
        }

    def start(self) -> None:
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not get ready:\n{self.log()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            return httpx2.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    def _api(self, path: str, **params: str) -> Any:
        response = httpx2.get(f"{self.url}/api/v1/{path}", params=params, timeout=REQUEST_TIMEOUT_S)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"/api/v1/{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now; an
        AssertionError with Prometheus's message if it does not parse or evaluate."""
        data = self._api("query", query=expr)
        if data["resultType"] in {"scalar", "string"}:
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._api("targets", state="active")["activeTargets"]
        return active

    def wait_for_targets_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every target has been scraped successfully; an AssertionError naming those
        that were not (with why) if `timeout_s` passes first."""
        expected = sum(len(targets) for targets in self.jobs.values())
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.targets()
            if len(found) == expected and all(target["health"] == "up" for target in found):
                return
            if time.monotonic() > deadline:
                health = {t["scrapeUrl"]: f"{t['health']} {t['lastError']}" for t in found}
                raise AssertionError(f"targets not up after {timeout_s:.0f} s: {health}")
            time.sleep(0.1)

    def wait_for_data(self, expr: str, timeout_s: float = START_TIMEOUT_S) -> list[dict[str, Any]]:
        """Until `expr` returns a sample (e.g. a series scraped since some work), and those."""
        return wait_until(lambda: self.query(expr), f"data for {expr}", timeout_s=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def find_prometheus() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )
