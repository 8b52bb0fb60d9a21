"""Access lines are logged on a thread of their own (core.logging.LaterLines): in order, each
with its own request's fields, all of them by `flush()`, and by the caller when too many wait."""

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from loguru import logger

from nogil_bench.core.logging import LaterLines, add_request_fields, request_fields

if TYPE_CHECKING:
    from loguru import Record


@pytest.fixture
def records() -> Iterator[list[Record]]:
    captured: list[Record] = []
    sink_id = logger.add(lambda message: captured.append(message.record), level="INFO")
    yield captured
    logger.remove(sink_id)


def test_lines_reach_the_sinks_in_order_by_flush(records: list[Record]) -> None:
    later = LaterLines()

    for number in range(500):
        later.info("line {number}", {"number": number})
    later.flush()

    assert [record["message"] for record in records] == [f"line {n}" for n in range(500)]
    assert {record["thread"].name for record in records} == {"nogil-bench-log"}


def test_a_line_carries_its_own_fields_not_those_of_the_request_that_started_the_thread(
    records: list[Record],
) -> None:
    # The app's patcher adds the current request's fields to every line; the thread must not
    # inherit the context of the request whose line started it.
    logger.configure(patcher=add_request_fields)  # as configure_logging does
    later = LaterLines()
    token = request_fields.set({"request_id": "the-first"})
    try:
        later.info("first", {"request_id": "the-first"})
    finally:
        request_fields.reset(token)
    later.info("second", {"request_id": "the-second"})
    later.flush()

    assert [(r["message"], r["extra"]["request_id"]) for r in records] == [
        ("first", "the-first"),
        ("second", "the-second"),
    ]


def test_past_the_bound_the_caller_logs_its_own_line(
    records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    later = LaterLines()
    monkeypatch.setattr(LaterLines, "MAX_WAITING", 0)

    later.info("now", {})

    assert [(r["message"], r["thread"].name) for r in records] == [
        ("now", threading.current_thread().name)
    ]


def test_flush_gives_up_on_a_stuck_sink_so_that_a_stopping_process_can_exit() -> None:
    release = threading.Event()

    def stuck(_message: object) -> None:  # a stderr that no one reads
        release.wait()

    sink_id = logger.add(stuck, level="INFO")
    later = LaterLines()
    try:
        later.info("stuck", {})

        assert later.flush(timeout_s=0.2) is False
    finally:
        release.set()
        logger.remove(sink_id)
    assert later.flush() is True


def test_a_line_that_cannot_be_logged_does_not_end_the_thread(records: list[Record]) -> None:
    def refuses(_message: object) -> None:
        raise OSError("a sink that fails")

    sink_id = logger.add(refuses, level="INFO", catch=False)  # the error reaches the thread
    later = LaterLines()
    try:
        later.info("lost", {})
        assert later.flush(timeout_s=2) is True
    finally:
        logger.remove(sink_id)

    later.info("kept", {})
    assert later.flush(timeout_s=2) is True
    assert [record["message"] for record in records][-1] == "kept"
