import os
import platform
import sys
from importlib.metadata import version

from fastapi.testclient import TestClient
from loguru import logger

from nogil_bench.core.config import Settings
from nogil_bench.core.runtime import REPORTED_PACKAGES
from nogil_bench.main import create_app
from tests.utils.api import register_and_login

DETAILS = "/api/v1/health/details"


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


def test_public_health_names_no_package_versions(client: TestClient) -> None:
    body = client.get("/health").json()

    assert set(body) == {
        "status",
        "python_version",
        "implementation",
        "free_threaded",
        "gil_enabled",
        "cpu_count",
    }


def test_health_details_report_the_installed_version_of_every_named_package_to_a_user(
    client: TestClient,
) -> None:
    alice = register_and_login(client, "alice@example.com")

    response = client.get(DETAILS, headers=alice)

    assert response.status_code == 200
    assert response.json()["packages"] == {name: version(name) for name in REPORTED_PACKAGES}
    assert response.json()["gil_enabled"] is sys._is_gil_enabled()


def test_health_details_need_a_logged_in_user(client: TestClient) -> None:
    response = client.get(DETAILS)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


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
