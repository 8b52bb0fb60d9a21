"""The request path's short reads run on a few threads of their own (core.reads.ReadThreads):
never more at once than the size, in the caller's context, each answer or error back to its
caller's event loop, and the threads outlive a caller that gave up and a loop that closed."""

import asyncio
import threading
import time
from contextvars import ContextVar

import pytest

from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.reads import ReadThreads

request_name: ContextVar[str] = ContextVar("request_name", default="none")


def most_at_once(reads: ReadThreads, calls: int) -> tuple[int, set[str]]:
    """How many of `calls` slow reads ran at once, at most, and on which threads."""
    lock = threading.Lock()
    running = 0
    peak = 0
    threads: set[str] = set()

    def slow_read() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for every free thread to take one, even on a busy host
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(reads.run(slow_read) for _ in range(calls)))

    asyncio.run(main())
    return peak, threads


def test_a_read_returns_its_result_from_a_read_thread() -> None:
    reads = ReadThreads(2)

    def where(a: int, b: int) -> tuple[int, str]:
        return a + b, threading.current_thread().name

    total, thread = asyncio.run(reads.run(where, 2, 3))

    assert total == 5
    assert thread.startswith("nogil-bench-read-")
    assert thread != threading.current_thread().name


def test_no_more_reads_run_at_once_than_the_size() -> None:
    peak, threads = most_at_once(ReadThreads(2), calls=8)

    assert peak == 2
    assert len(threads) == 2


def test_resizing_down_stops_the_extra_threads() -> None:
    reads = ReadThreads(3)
    assert most_at_once(reads, calls=9)[0] == 3

    reads.resize(1)

    assert most_at_once(reads, calls=4)[0] == 1


def test_a_read_raises_its_error_in_the_caller() -> None:
    def missing() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        asyncio.run(ReadThreads().run(missing))


def test_a_read_sees_its_callers_context_and_shares_its_mutable_values() -> None:
    # As a request's log fields: set on the loop, read and added to in the read.
    fields: ContextVar[dict[str, str]] = ContextVar("fields")

    def read() -> str:
        fields.get()["user_id"] = "u1"
        seen = request_name.get()
        request_name.set("set in the read")  # in a copy: neither the caller nor the next read
        return seen

    async def request(name: str) -> tuple[str, dict[str, str]]:
        request_name.set(name)
        fields.set({})
        seen = await reads.run(read)
        assert request_name.get() == name
        return seen, fields.get()

    reads = ReadThreads(1)

    async def main() -> list[tuple[str, dict[str, str]]]:
        return list(await asyncio.gather(request("first"), request("second")))

    assert asyncio.run(main()) == [("first", {"user_id": "u1"}), ("second", {"user_id": "u1"})]
    assert asyncio.run(reads.run(request_name.get)) == "none"


def test_the_thread_outlives_a_caller_that_gave_up_and_a_loop_that_closed() -> None:
    reads = ReadThreads(1)
    release = threading.Event()
    errors: list[dict[str, object]] = []

    async def give_up() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reads.run(release.wait), timeout=0.05)

    asyncio.run(give_up())  # the caller is cancelled, then its loop closes, mid-read
    release.set()

    assert asyncio.run(asyncio.wait_for(reads.run(lambda: "still here"), timeout=5)) == (
        "still here"
    )
    assert errors == []


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReadThreads(0)
    with pytest.raises(ValueError, match="at least 1"):
        ReadThreads().resize(0)


@pytest.mark.parametrize(
    ("database_url", "cores", "expected"),
    [
        (None, 2, 1),  # SQLite: one per core beside the event loop's
        (None, 1, 1),
        (None, 8, 7),
        ("postgresql+psycopg://db/nogil", 2, 8),  # a server: reads mostly wait on it
    ],
)
def test_read_threads_default_to_the_store_and_the_cores(
    monkeypatch: pytest.MonkeyPatch, database_url: str | None, cores: int, expected: int
) -> None:
    monkeypatch.setattr(runtime, "cpu_count", lambda: cores)

    assert Settings(DATABASE_URL=database_url).read_threads == expected
    assert Settings(DATABASE_URL=database_url, READ_THREADS=3).read_threads == 3
