import os
import platform
import sys
from importlib.metadata import version

from fastapi.testclient import TestClient
from loguru import logger

from nogil_bench.core.config import Settings
from nogil_bench.core.runtime import REPORTED_PACKAGES
from nogil_bench.main import create_app


def test_health_tells_the_truth_about_the_runtime(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["python_version"] == platform.python_version()
    assert body["implementation"] == "cpython"
    assert body["free_threaded"] is True
    assert body["gil_enabled"] is sys._is_gil_enabled()
    assert body["cpu_count"] == os.process_cpu_count()


def test_liveness_answers_cheaply(client: TestClient) -> None:
    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_health_reports_the_installed_version_of_every_named_package(client: TestClient) -> None:
    packages = client.get("/health").json()["packages"]

    assert packages == {name: version(name) for name in REPORTED_PACKAGES}


def test_startup_warns_exactly_when_the_gil_is_on_in_a_free_threaded_build(
    settings: Settings,
) -> None:
    app = create_app(settings)  # sets up logging, so the sink is added after it
    warnings: list[str] = []
    sink_id = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        with TestClient(app):
            pass
    finally:
        logger.remove(sink_id)

    gil_warnings = [line for line in warnings if "WITH the GIL" in line]
    assert len(gil_warnings) == (1 if sys._is_gil_enabled() else 0)


def test_startup_creates_the_data_directory(settings: Settings) -> None:
    assert not settings.DATA_DIR.exists()

    with TestClient(create_app(settings)):
        assert settings.DATA_DIR.is_dir()


def test_health_is_documented_in_the_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert "/health" in schema["paths"]
    assert "free_threaded" in schema["components"]["schemas"]["Health"]["properties"]
