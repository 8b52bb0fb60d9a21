"""Logs: one format, a request id on every line of a request and in its response, the user and
job ids where known, an access line per request, and a JSON 500 for unhandled errors."""

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import Request
from fastapi.testclient import TestClient
from loguru import logger
from starlette.types import Message
from uvicorn.middleware.message_logger import MessageLoggerMiddleware

from nogil_bench.core.config import Settings
from nogil_bench.core.logging import LATER, configure_logging
from nogil_bench.main import create_app
from tests.utils.api import Headers, wait_until_finished

if TYPE_CHECKING:
    from loguru import Record

type Records = list[Record]


@pytest.fixture
def records(client: TestClient) -> Iterator[Records]:
    """Every log record from here on, as loguru's record dicts (after the app's set-up)."""
    captured: Records = []
    sink_id = logger.add(lambda message: captured.append(message.record), level="DEBUG")
    yield captured
    logger.remove(sink_id)


def test_a_valid_request_id_is_kept_and_echoed(client: TestClient) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123.def"})

    assert response.headers["X-Request-ID"] == "abc-123.def"


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 200, "line\nbreak"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(
    client: TestClient, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}

    returned = client.get("/health/live", headers=headers).headers["X-Request-ID"]

    assert returned != given
    assert len(returned) == 32
    int(returned, 16)


def test_every_line_of_a_request_carries_its_id_and_the_user_once_known(
    client: TestClient, alice: Headers, records: Records
) -> None:
    started = time.perf_counter()
    me = client.get("/api/v1/users/me", headers=alice | {"X-Request-ID": "req-42"}).json()
    measured_ms = (time.perf_counter() - started) * 1000
    LATER.flush()  # access lines are logged on a thread of their own

    lines = [record for record in records if record["extra"].get("request_id") == "req-42"]
    access = [line for line in lines if "status" in line["extra"]]
    assert len(access) == 1
    extra = access[0]["extra"]
    assert extra["method"] == "GET"
    assert extra["path"] == "/api/v1/users/me"
    assert extra["status"] == 200
    assert 0 < extra["duration_ms"] <= measured_ms
    assert extra["client_ip"] == "testclient"
    assert extra["user_agent"] == "testclient"
    assert extra["user_id"] == me["id"]


def test_a_lists_access_line_names_its_user_read_in_the_pages_own_hop(
    client: TestClient, alice: Headers, records: Records
) -> None:
    me = client.get("/api/v1/users/me", headers=alice).json()

    client.get("/api/v1/jobs", headers=alice | {"X-Request-ID": "list-7"})
    LATER.flush()

    access = [
        record
        for record in records
        if record["extra"].get("request_id") == "list-7" and "status" in record["extra"]
    ]
    assert [line["extra"]["user_id"] for line in access] == [me["id"]]


def test_the_access_line_times_the_whole_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The middleware's clock moves only while the route runs: 50 ms of it.
    clock = SimpleNamespace(now_s=1000.0)
    monkeypatch.setattr(
        "nogil_bench.core.requests.time", SimpleNamespace(perf_counter=lambda: clock.now_s)
    )
    app = create_app(settings)

    @app.get("/slow")
    def slow() -> None:
        clock.now_s += 0.05

    records: Records = []
    sink_id = logger.add(lambda message: records.append(message.record), level="INFO")
    try:
        with TestClient(app) as client:
            client.get("/slow")
    finally:
        logger.remove(sink_id)

    [access] = [
        r["extra"]
        for r in records
        if r["extra"].get("path") == "/slow" and r["level"].name == "INFO"
    ]
    assert access["duration_ms"] == pytest.approx(50.0)


def test_a_slow_request_is_logged_as_a_warning(settings: Settings) -> None:
    slow_app = create_app(settings.model_copy(update={"SLOW_REQUEST_MS": 0.000001}))
    records: Records = []
    sink_id = logger.add(lambda message: records.append(message.record), level="WARNING")
    try:
        with TestClient(slow_app) as slow_client:
            slow_client.get("/health/live")
    finally:
        logger.remove(sink_id)

    warnings = [
        r for r in records if r["level"].name == "WARNING" and "slow request" in r["message"]
    ]
    assert warnings
    assert warnings[0]["extra"]["path"] == "/health/live"


def test_an_unhandled_error_is_a_json_500_with_the_request_id_and_a_logged_traceback(
    settings: Settings,
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    captured: Records = []
    sink_id = logger.add(lambda message: captured.append(message.record), level="ERROR")
    try:
        with TestClient(app) as client:
            response = client.get("/boom", headers={"X-Request-ID": "req-boom"})
    finally:
        logger.remove(sink_id)

    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "req-boom"}
    assert response.headers["X-Request-ID"] == "req-boom"
    [error] = captured
    assert error["extra"]["request_id"] == "req-boom"
    assert error["exception"] is not None
    assert "kaboom" in str(error["exception"].value)


def test_a_client_gone_before_its_body_is_read_is_logged_as_info_not_an_error(
    settings: Settings,
) -> None:
    app = create_app(settings)

    @app.post("/echo")
    async def echo(request: Request) -> int:
        return len(await request.body())

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"content-length", b"10")],
        "client": ("127.0.0.1", 1234),
    }
    captured: Records = []
    sink_id = logger.add(lambda message: captured.append(message.record), level="INFO")
    try:
        with TestClient(app):  # started, as served
            asyncio.run(app(scope, gone, send))
    finally:
        logger.remove(sink_id)

    assert sent == []  # no one to answer
    in_request = [r for r in captured if "request_id" in r["extra"]]
    assert [(r["level"].name, r["message"]) for r in in_request] == [
        ("INFO", "client disconnected before POST /echo was answered"),
        ("INFO", "POST /echo 499"),
    ]
    assert in_request[-1]["extra"]["status"] == 499


def test_job_work_lines_carry_the_batch_and_job_ids(
    client: TestClient, alice: Headers, records: Records
) -> None:
    body = {"source": {"count": 2, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
    batch = client.post("/api/v1/batches", headers=alice, json=body).json()
    wait_until_finished(client, f"/api/v1/batches/{batch['id']}", alice)

    job_lines = [r for r in records if r["extra"].get("batch_id") == batch["id"]]
    assert {r["extra"].get("job_id") for r in job_lines} >= set(batch["job_ids"])


def test_json_format_writes_one_json_object_per_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings.model_copy(update={"LOG_FORMAT": "json"}))

    logger.bind(job_id="j-1").info("hello {}", "world")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "hello world"
    assert lines[0]["level"] == "INFO"
    assert lines[0]["job_id"] == "j-1"
    assert lines[0]["time"]
    assert "ValueError: bad" in lines[1]["exception"]


def test_text_format_is_readable(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings.model_copy(update={"LOG_FORMAT": "text"}))

    logger.info("hello")

    line = capsys.readouterr().err
    assert "| INFO     |" in line
    assert "hello" in line


@pytest.mark.parametrize(("level", "wrapped"), [("INFO", False), ("TRACE", True)])
def test_uvicorn_logs_every_asgi_message_only_at_trace(
    settings: Settings, level: str, wrapped: bool
) -> None:
    """uvicorn wraps the app in its MessageLoggerMiddleware when the standard library would
    keep TRACE records: a record per ASGI message, on every request."""
    app = create_app(settings.model_copy(update={"LOG_LEVEL": level}))
    config = uvicorn.Config(app, http="h11", loop="asyncio", log_config=None)
    config.load()

    layers = []
    layer = config.loaded_app
    while layer is not None:
        layers.append(type(layer))
        layer = getattr(layer, "app", None)
    assert (MessageLoggerMiddleware in layers) is wrapped


def test_uvicorn_and_stdlib_loggers_go_through_the_same_sink(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings.model_copy(update={"LOG_FORMAT": "json"}))

    logging.getLogger("uvicorn.error").warning("from uvicorn")

    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert line["message"] == "from uvicorn"
    assert line["logger"] == "uvicorn.error"


def test_a_stdlib_record_whose_text_has_braces_is_logged_as_it_reads(settings: Settings) -> None:
    # Celery logs an unknown task with its body: braces, and a "{0}" loguru must not fill in.
    configure_logging(settings)
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message} {extra[logger_name]}")
    try:
        logging.getLogger("celery.worker.consumer").error(
            "Received unregistered task of type %r. Body: %s", "nope", "{'args': ({0}, {x})}"
        )
    finally:
        logger.remove(sink)
    assert lines == [
        "Received unregistered task of type 'nope'. Body: {'args': ({0}, {x})} "
        "celery.worker.consumer\n"
    ]
