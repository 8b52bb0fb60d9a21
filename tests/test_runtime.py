"""The interpreter is the free-threaded build, and nothing nogil-bench imports turns the GIL on."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from nogil_bench.core import runtime

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
from importlib.metadata import packages_distributions
import nogil_bench
from nogil_bench.core import runtime
for module in pkgutil.walk_packages(nogil_bench.__path__, "nogil_bench."):
    importlib.import_module(module.name)
# Every top-level module of every reported package, e.g. PIL for pillow and jwt for pyjwt.
for module_name, distributions in packages_distributions().items():
    names = {name.lower().replace("_", "-") for name in distributions}
    if names & set(runtime.REPORTED_PACKAGES) and module_name.isidentifier():
        importlib.import_module(module_name)
import pwdlib.hashers.argon2, pwdlib.hashers.bcrypt
import PIL.Image, PIL.ImageFilter, sqlalchemy, h11, httpx2
from nogil_bench.main import create_app
create_app()
print(json.dumps({"gil_enabled": sys._is_gil_enabled(), "warning": runtime.gil_warning()}))
"""


def run_fresh_interpreter(
    code: str, options: tuple[str, ...] = (), **env: str
) -> dict[str, object]:
    """Runs code in a new interpreter without the caller's PYTHON_GIL; returns its JSON line."""
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"} | env
    completed = subprocess.run(
        [sys.executable, *options, "-c", code],
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_the_interpreter_is_a_free_threaded_build() -> None:
    assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
    assert runtime.is_free_threaded_build()


def test_the_gil_stays_off_after_the_whole_app_and_its_dependencies_are_imported() -> None:
    result = run_fresh_interpreter(IMPORT_EVERYTHING)

    assert result == {"gil_enabled": False, "warning": None}


def test_forcing_the_gil_on_is_seen_and_explained() -> None:
    result = run_fresh_interpreter(IMPORT_EVERYTHING, PYTHON_GIL="1")

    assert result["gil_enabled"] is True
    assert isinstance(result["warning"], str)
    assert "forced on with PYTHON_GIL=1" in result["warning"]


def test_runtime_reports_the_gil_state_of_this_process() -> None:
    assert runtime.is_gil_enabled() is sys._is_gil_enabled()
    expected_switch = "PYTHON_GIL=1" if os.environ.get("PYTHON_GIL") == "1" else None
    assert runtime.gil_forced_on_by() == expected_switch


def test_the_x_option_wins_over_the_environment_variable() -> None:
    result = run_fresh_interpreter(IMPORT_EVERYTHING, ("-X", "gil=1"), PYTHON_GIL="0")

    assert result["gil_enabled"] is True
    assert isinstance(result["warning"], str)
    assert "forced on with -X gil=1" in result["warning"]


SERVE_ON_POSTGRESQL = """
import json, sys
import psycopg
from fastapi.testclient import TestClient
from nogil_bench.main import create_app
with TestClient(create_app()) as client:
    ready = client.get("/health/ready").status_code
gil = sys._is_gil_enabled()
print(json.dumps({"gil_enabled": gil, "ready": ready, "libpq": psycopg.pq.__impl__}))
"""


def test_the_gil_stays_off_with_the_service_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    """psycopg 3 in its pure-Python form (libpq through ctypes): its C speed-ups have no
    free-threaded wheel, and psycopg2 would turn the GIL on."""
    result = run_fresh_interpreter(
        SERVE_ON_POSTGRESQL,
        NOGIL_BENCH_DATABASE_URL=postgres_url,
        NOGIL_BENCH_DATA_DIR=str(tmp_path / "data"),
    )

    assert result == {"gil_enabled": False, "ready": 200, "libpq": "python"}


SERVE_ON_MARIADB = """
import json, sys
import pymysql
from fastapi.testclient import TestClient
from nogil_bench.main import create_app
with TestClient(create_app()) as client:
    ready = client.get("/health/ready").status_code
    in_a_request = client.get("/health").json()["gil_enabled"]
    engine = client.app.state.engine
    with engine.connect() as connection:
        server = connection.exec_driver_sql("SELECT VERSION()").scalar_one()
print(json.dumps({
    "gil_enabled": sys._is_gil_enabled(),
    "in_a_request": in_a_request,
    "ready": ready,
    "driver": pymysql.__name__,
    "mariadb": "MariaDB" in server,
}))
"""


def test_the_gil_stays_off_with_the_service_on_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    """PyMySQL is pure Python: nothing it loads can turn the GIL on, at import or in a request
    the service answers from MariaDB."""
    result = run_fresh_interpreter(
        SERVE_ON_MARIADB,
        NOGIL_BENCH_DATABASE_URL=mariadb_url,
        NOGIL_BENCH_DATA_DIR=str(tmp_path / "data"),
    )

    assert result == {
        "gil_enabled": False,
        "in_a_request": False,
        "ready": 200,
        "driver": "pymysql",
        "mariadb": True,
    }


def test_a_gil_turned_on_for_a_moment_is_not_taken_for_a_gil_that_stays_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread loading a C extension module turns the GIL on until the module's init
    says it runs without: a start-up check waits for that moment to pass."""
    readings = iter([True, True, True])
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: next(readings, False))

    assert runtime.gil_stays_enabled(settle_s=5.0) is False


def test_a_gil_still_on_after_the_settling_time_stays_enabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: True)

    assert runtime.gil_stays_enabled(settle_s=0.05) is True
