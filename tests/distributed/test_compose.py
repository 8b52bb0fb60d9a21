"""compose.distributed.yaml: every service is one an orchestrator can keep running, and
Prometheus and Grafana see them all."""

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.distributed.yaml").read_text())
    found: dict[str, dict[str, Any]] = loaded["services"]
    return found


def test_every_new_service_has_a_healthcheck_a_restart_policy_init_and_a_grace_period() -> None:
    for name, service in services().items():
        if name == "nogil-bench":  # compose.yaml defines it; this file adds to it
            continue
        assert "healthcheck" in service, name
        assert service["restart"] == "unless-stopped", name
        assert service["init"] is True, name
        assert "stop_grace_period" in service, name


WORKERS = ("jobs-worker", "benchmarks-worker")


def test_the_api_and_the_workers_wait_for_a_healthy_database_and_broker() -> None:
    for name in ("nogil-bench", *WORKERS):
        depends = services()[name]["depends_on"]
        for needed in ("postgres", "rabbitmq"):
            assert depends[needed] == {"condition": "service_healthy"}, (name, needed)


def test_workers_share_no_disk_with_the_api_and_keep_the_gil_off() -> None:
    for name in WORKERS:
        worker = services()[name]
        assert "volumes" not in worker
        assert worker["environment"]["NOGIL_BENCH_FILE_STORE"] == "database"
        assert worker["environment"]["PYTHON_GIL"] == "0"


def test_each_kind_of_work_has_its_own_worker_service() -> None:
    commands = {name: services()[name]["command"] for name in WORKERS}
    assert commands == {
        "jobs-worker": ["nogil-bench", "worker", "--queues", "jobs"],
        "benchmarks-worker": ["nogil-bench", "worker", "--queues", "benchmarks"],
    }
    assert "worker" not in services()  # one service taking everything would defeat it


def mounts(name: str) -> dict[str, str]:
    """A service's bind mounts: where in the container, from which path of the repository."""
    found = {}
    for volume in services()[name].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source
    return found


def prometheus_config() -> dict[str, Any]:
    source = mounts("prometheus")["/etc/prometheus/prometheus.yml"]
    config: dict[str, Any] = yaml.safe_load((ROOT / source).read_text())
    return config


def test_prometheus_scrapes_the_api_and_every_replica_of_each_worker_service() -> None:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}

    assert jobs["nogil-bench"]["static_configs"] == [{"targets": ["nogil-bench:8000"]}]
    for name in WORKERS:
        port = int(services()[name]["environment"]["NOGIL_BENCH_WORKER_METRICS_PORT"])
        # Every replica: compose's DNS answers the service's name with each one's address.
        [discovery] = jobs[name]["dns_sd_configs"]
        assert (discovery["names"], discovery["type"], discovery["port"]) == ([name], "A", port)
    assert set(jobs) == {"nogil-bench", *WORKERS}
    assert all("metrics_path" not in job for job in jobs.values())  # /metrics, the default


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_repository_dashboard() -> (
    None
):
    grafana = mounts("grafana")
    provisioning = ROOT / grafana["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "nogil-bench.yaml").read_text())[
        "providers"
    ]

    assert (datasource["type"], datasource["url"]) == ("prometheus", "http://prometheus:9090")
    assert services()["grafana"]["depends_on"]["prometheus"] == {"condition": "service_healthy"}
    # The provider reads the folder compose mounts from the repository's dashboards.
    dashboards = ROOT / grafana[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "nogil-bench.json").read_text())
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/nogil-bench.json"
    used = {
        json.dumps(holder["datasource"], sort_keys=True)
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for holder in (panel, *panel["targets"])
    }
    assert used == {json.dumps({"type": "prometheus", "uid": datasource["uid"]}, sort_keys=True)}


def test_the_workers_broker_is_rabbitmq_and_flower_watches_it_read_only() -> None:
    for name in ("nogil-bench", *WORKERS, "flower"):
        url = services()[name]["environment"]["NOGIL_BENCH_BROKER_URL"]
        assert url.startswith("amqp://"), name  # dead letters through an exchange
    flower = services()["flower"]
    assert flower["command"][:2] == ["nogil-bench", "flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]  # its /metrics takes no password
    assert "redis" not in services()
