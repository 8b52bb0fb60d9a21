import json
import os
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

import httpx2
import pytest

from nogil_bench.auth.schemas import UserCreate
from nogil_bench.auth.service import create_user, get_user_by_email
from nogil_bench.cli import healthcheck, main
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings, get_settings
from nogil_bench.core.db import make_engine
from nogil_bench.core.migrations import head_revision, upgrade_database
from nogil_bench.serving import ServerName, default_server
from tests.utils.database import sqlite_only
from tests.utils.live_server import NOGIL_BENCH, LiveServer, free_port

# The server's own start-up line, routed to loguru with the module that logged it.
SERVER_MODULE = {"uvicorn": "uvicorn.server", "granian": "granian.server.common"}


@pytest.mark.parametrize(
    ("stop_signal", "server_name"),
    [(signal.SIGTERM, None), (signal.SIGINT, "uvicorn")],
    ids=["SIGTERM-default", "SIGINT-uvicorn"],
)
def test_serve_answers_health_on_the_given_port_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals, server_name: ServerName | None
) -> None:
    server = LiveServer(tmp_path, server=server_name)
    server.start()
    try:
        health = httpx2.get(f"{server.url}/health", timeout=5).json()
        assert health["free_threaded"] is True
        assert health["gil_enabled"] is (os.environ.get("PYTHON_GIL") == "1")
        # What the container's HEALTHCHECK runs: no curl, just the console script.
        check = subprocess.run(
            [NOGIL_BENCH, "healthcheck", "--url", f"{server.url}/health/live"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    finally:
        server.send(stop_signal)
        returncode = server.wait()
    output = server.output()

    # A requested stop is a success: drained, then exit 0 (not -15/143, read as a crash).
    assert returncode == 0, output
    assert f"nogil-bench {version('nogil-bench')} starting" in output
    assert "nogil-bench stopped" in output
    lines = [json.loads(line) for line in output.splitlines()]  # JSON logs, one per line
    assert any(
        (line["module"], line["function"]) == ("nogil_bench.main", "lifespan") for line in lines
    )
    origins = {line["module"] for line in lines}
    module = SERVER_MODULE[server_name or default_server(reload=False)]
    assert module in origins, "stdlib records keep their origin when routed to loguru"


@pytest.mark.parametrize(
    ("free_threaded", "gil_enabled", "reload", "expected"),
    [
        (True, False, False, "granian"),
        (True, True, False, "uvicorn"),
        (False, True, False, "uvicorn"),
        (True, False, True, "uvicorn"),
    ],
    ids=["GIL-off", "GIL-forced-on", "GIL-build", "reload"],
)
def test_serve_defaults_to_granian_where_it_can_serve_and_to_uvicorn_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
    free_threaded: bool,
    gil_enabled: bool,
    reload: bool,
    expected: ServerName,
) -> None:
    monkeypatch.setattr(runtime, "is_free_threaded_build", lambda: free_threaded)
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: gil_enabled)

    assert default_server(reload=reload) == expected


def test_serve_with_workers_names_a_server_that_has_them_when_the_default_is_uvicorn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: True)

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--workers", "2"])

    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--server uvicorn serves from one process" in error
    assert "name --server gunicorn or granian" in error


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_serve_refuses_a_port_that_is_not_a_tcp_port(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", port])

    assert exit_info.value.code == 2
    assert "is not a TCP port" in capsys.readouterr().err


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([])

    assert "serve" in capsys.readouterr().err


def test_healthcheck_fails_naming_the_url_when_nothing_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/health/live"

    assert healthcheck(url) == 1
    assert f"unhealthy: {url}" in capsys.readouterr().err


def test_healthcheck_refuses_a_url_that_is_not_http(capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck("file:///etc/passwd") == 1
    assert "is not an http(s) URL" in capsys.readouterr().err


def test_db_upgrade_migrates_to_the_newest_revision_and_db_current_says_so(
    empty_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # away from a developer's .env
    monkeypatch.setenv("NOGIL_BENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOGIL_BENCH_DATABASE_URL", empty_database)
    get_settings.cache_clear()

    def db(command: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["db", command])
        assert exit_info.value.code == 0, capsys.readouterr().err
        return capsys.readouterr().out

    try:
        head = head_revision()
        assert db("current") == f"none (the newest is {head}: run `nogil-bench db upgrade`)\n"
        assert db("upgrade") == f"{head} (head)\n"
        assert db("current") == f"{head} (head)\n"
    finally:
        get_settings.cache_clear()


def test_worker_without_a_broker_exits_saying_which_setting_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # away from a developer's .env
    monkeypatch.delenv("NOGIL_BENCH_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["worker"])
    finally:
        get_settings.cache_clear()

    assert "set NOGIL_BENCH_BROKER_URL" in str(exit_info.value.code)


def test_only_the_worker_takes_arguments_for_celery(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "current", "--loglevel", "DEBUG"])

    assert exit_info.value.code == 2
    assert "unrecognized arguments: --loglevel DEBUG" in capsys.readouterr().err


@sqlite_only
def test_users_admin_grants_and_revokes_an_admin_and_names_an_unknown_email(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # away from a developer's .env
    monkeypatch.setenv("NOGIL_BENCH_DATA_DIR", str(settings.DATA_DIR))
    monkeypatch.setenv("NOGIL_BENCH_DATABASE_URL", settings.database_url)
    engine = make_engine(settings)
    upgrade_database(engine)
    create_user(
        engine=engine,
        user_create=UserCreate(email="ops@example.com", password="a fine password"),
        settings=settings,
    )

    def users(*args: str) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main(["users", "admin", *args])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    def is_admin() -> bool:
        user = get_user_by_email(engine=engine, email="ops@example.com")
        assert user is not None
        return user.is_admin

    get_settings.cache_clear()
    try:
        granted = users("OPS@example.com"), is_admin()  # emails compare case-insensitively
        revoked = users("ops@example.com", "--revoke"), is_admin()
        unknown = users("nobody@example.com")
    finally:
        get_settings.cache_clear()
        engine.dispose()

    # stderr also has the log's lines (the schema is checked first), in whatever format an
    # earlier test configured.
    assert granted[0][:2] == (0, "OPS@example.com is now an admin\n")
    assert granted[1] is True
    assert revoked[0][:2] == (0, "ops@example.com is no longer an admin\n")
    assert revoked[1] is False
    assert unknown[:2] == (1, "")
    assert unknown[2].endswith("no user registered with 'nobody@example.com'\n")
