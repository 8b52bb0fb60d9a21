"""The Grafana dashboard in deploy/grafana/dashboards: every panel's query is one a real
Prometheus (Debian's) answers with data, scraping a live API and one worker per queue (on
SQLite and Redis) while they work. Grafana is not needed for that: a panel is PromQL and layout,
and the test runs each panel's PromQL through Prometheus's HTTP API."""

import json
import math
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from nogil_bench.core.config import Settings
from nogil_bench.distributed.celery_app import RUN_TASK, make_celery, work_queue
from nogil_bench.work.registry import WORK_QUEUES
from tests.conftest import server_missing
from tests.utils.api import FINISHED, PURE_PIPELINE, SMALL_BATCH
from tests.utils.live_client import Client
from tests.utils.live_server import LiveServer
from tests.utils.prometheus_server import INSTALL_HINT, PrometheusServer, find_prometheus
from tests.utils.redis_server import WorkerProcess
from tests.utils.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "nogil-bench.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# What Grafana puts in place of its variables. $__rate_interval is at least four scrape
# intervals (the datasource's timeInterval); here, a window holding every scrape of the work.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
# What the operations guide promises (issue 26): one panel each, by title.
REQUIRED_PANELS = {
    "Request rate by route",
    "p99 latency by route",
    "Queue depth by kind",
    "Queue wait by kind",
    "Throughput by runner and GIL mode",
    "Task failures",
    "Dead letters",
    "Workers up",
}
API_JOB = "nogil-bench"
WAIT_S = 60.0
# Prometheus takes its targets about 5 s after it starts, then scrapes every second.
QUERY_WAIT_S = 30.0


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the rows, those in collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each panel query's PromQL, Grafana's variables replaced, by "title [refId]"."""
    found = {}
    for panel in panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            # "$1" in label_replace is PromQL's, not a variable: Grafana's start with a letter.
            unset = re.search(r"\$\{?[A-Za-z_]\w*", expr)
            assert unset is None, f"{panel['title']}: {unset.group()} is not set here"
            found[f"{panel['title']} [{target['refId']}]"] = expr
    return found


def test_the_dashboard_has_the_panels_the_operations_guide_names_laid_out_on_the_datasource() -> (
    None
):
    dashboard = load_dashboard()
    found = panels(dashboard)

    assert (dashboard["uid"], dashboard["title"]) == ("nogil-bench", "nogil-bench")
    assert REQUIRED_PANELS <= {panel["title"] for panel in found}
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    every_panel = [*rows, *found]
    assert len({panel["id"] for panel in every_panel}) == len(every_panel)
    cells = [
        (x, y)
        for panel in every_panel
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(set(cells)) == len(cells), "panels overlap"
    for panel in found:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert re.fullmatch("[A-Z]", target["refId"]), panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


@pytest.fixture
def prometheus_binary() -> str:
    """Debian's `prometheus`; without it the test is skipped with the install hint, or fails
    under CI. NOGIL_BENCH_TEST_PROMETHEUS=0 skips it everywhere."""
    if os.environ.get("NOGIL_BENCH_TEST_PROMETHEUS") == "0":
        pytest.skip("Prometheus tests turned off (NOGIL_BENCH_TEST_PROMETHEUS=0)")
    binary = find_prometheus()
    if binary is None:
        server_missing(f"prometheus is not installed: {INSTALL_HINT}")
    return binary


def test_prometheus_accepts_the_compose_files_configuration(prometheus_binary: str) -> None:
    promtool = Path(prometheus_binary).with_name("promtool")  # in the same Debian package
    command = [str(promtool), "check", "config", str(PROMETHEUS_CONFIG)]
    checked = subprocess.run(command, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def scrape_jobs(api: LiveServer, workers: dict[str, WorkerProcess]) -> dict[str, list[str]]:
    """The compose file's scrape jobs (deploy/prometheus), by the same names, with the test's
    processes as their targets: the dashboard's queries name them."""
    targets = {API_JOB: [f"127.0.0.1:{api.port}"]} | {
        f"{queue}-worker": [f"127.0.0.1:{worker.metrics_port}"] for queue, worker in workers.items()
    }
    deployed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    assert {job["job_name"] for job in deployed} == set(targets)
    return targets


def each[T](action: Callable[[T], object], items: Iterable[T]) -> None:
    """`action` on every item at once (processes that each take seconds to start or stop)."""
    with ThreadPoolExecutor() as pool:
        list(pool.map(action, items))


def values(prometheus: PrometheusServer, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    """What `expr` evaluates to now: each sample's value, by its sorted labels."""
    return {
        tuple(sorted(sample["metric"].items())): float(sample["value"][1])
        for sample in prometheus.query(expr)
    }


def submit(client: Client, path: str, body: dict[str, Any]) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    return f"{path}/{response.json()['id']}"


def finished(client: Client, path: str) -> Callable[[], bool]:
    return lambda: client.get(path).json()["status"] in FINISHED


def test_every_panel_query_returns_data_from_prometheus_scraping_the_api_and_two_workers(
    prometheus_binary: str, broker_url: str, tmp_path: Path
) -> None:
    (tmp_path / "api").mkdir()
    with ExitStack() as cleanup:
        api = LiveServer(
            tmp_path / "api",
            BROKER_URL=broker_url,
            LEASE_SECONDS="3",
            EXECUTOR_POLL_SECONDS="0.2",
            METRICS_CACHE_SECONDS="0",  # the queue gauges as they are at each scrape
        )
        api.start()  # it makes the schema the workers use
        cleanup.callback(api.kill_all)
        data_dir = tmp_path / "api" / "data"  # the API's SQLite database, and its files
        workers = {
            queue: WorkerProcess(
                tmp_path / f"{queue}-worker",
                ("worker", "--queues", queue),
                DATA_DIR=str(data_dir),
                DATABASE_URL=f"sqlite:///{data_dir / 'nogil_bench.db'}",
                BROKER_URL=broker_url,
                LEASE_SECONDS="3",
                WORKER_NAME=f"{queue}-worker",
            )
            for queue in WORK_QUEUES
        }
        # Started first: it takes its targets only a few seconds in, while the workers start.
        prometheus = PrometheusServer(prometheus_binary, scrape_jobs(api, workers))
        prometheus.start()
        cleanup.callback(prometheus.stop)
        cleanup.callback(each, WorkerProcess.stop, workers.values())
        each(WorkerProcess.start, workers.values())

        prometheus.wait_for_targets_up(timeout_s=QUERY_WAIT_S)
        client = Client(api)
        celery = make_celery(Settings(BROKER_URL=broker_url, _env_file=None))  # type: ignore[call-arg]

        def some_work() -> None:
            """A job and a batch, a 404, and a task no dispatcher sends, which the jobs worker
            keeps as a dead letter. (A benchmark would add 5-8 s, and no series a panel needs.)"""
            job = {"source": {"width": 16, "height": 16}, "pipeline": PURE_PIPELINE}
            paths = [submit(client, "/jobs", job), submit(client, "/batches", SMALL_BATCH)]
            assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
            celery.send_task(RUN_TASK, args=["job", "not-a-work-id"], queue=work_queue("jobs"))
            for path in paths:
                wait_until(finished(client, path), f"{path} to finish", timeout_s=WAIT_S)

        # Twice, with a scrape between: every series then changes within the panels' window
        # (a series first scraped after the work would give rates of 0 and quantiles of NaN).
        some_work()
        prometheus.wait_for_data("nogil_bench_tasks_dead_lettered_total", timeout_s=WAIT_S)
        some_work()
        prometheus.wait_for_data("sum(nogil_bench_dead_letters) == 2", timeout_s=WAIT_S)

        expressions = queries(load_dashboard())

        def without_data() -> list[str]:
            """The queries with no sample that Grafana would draw (NaN it leaves out)."""
            return [
                name
                for name, expr in expressions.items()
                if all(math.isnan(value) for value in values(prometheus, expr).values())
            ]

        # Each rate needs a scrape after the work: Prometheus takes a second or two.
        deadline = time.monotonic() + QUERY_WAIT_S
        while (empty := without_data()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not empty, f"panels without data: {empty}"
        # What the panels show is the work done: a few spot checks.
        assert values(prometheus, expressions["Workers up [A]"]) == {
            (("job", "benchmarks-worker"),): 1.0,
            (("job", "jobs-worker"),): 1.0,
        }
        throughput = values(prometheus, expressions["Throughput by runner and GIL mode [A]"])
        assert throughput.keys() == {(("gil", "0"), ("runner", "threads"))}
        assert values(prometheus, expressions["Task failures [A]"]).keys() == {
            (("kind", "job"), ("outcome", "rejected"))
        }
        assert values(prometheus, expressions["Dead letters [A]"]) == {
            (("queue", "benchmarks"),): 0.0,
            (("queue", "jobs"),): 2.0,
        }
        for name in ("Throughput by runner and GIL mode [A]", "Task failures [A]"):
            assert all(value > 0 for value in values(prometheus, expressions[name]).values())
