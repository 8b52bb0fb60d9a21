"""compose.distributed.yaml: every service is one an orchestrator can keep running."""

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
        for needed in ("postgres", "redis"):
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
