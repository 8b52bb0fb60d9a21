"""The few threads that run the request path's short database reads (the token's user, a page
of a list), and the event loop's one hop to them: `await READS.run(function, *args)`.

Why not FastAPI's `run_in_threadpool` (anyio's worker threads) for these, measured on 3.14t
on 2 cores (docs/serving.md, "Read threads"; `scripts/bench_request_cpu.py`):

- An idle anyio worker waits in `threading.Condition.wait`. On a free-threaded build that
  lock spins, calling `sched_yield` up to 40 times, before it parks: under load that was a
  fifth of the service's CPU (perf). A thread waiting on a `SimpleQueue`, as these do, parks
  at once.
- anyio gives each hop to whichever of its (up to WORKER_THREADS) threads is free, so under
  load many threads run the same SQLAlchemy code at once, more of them than there are cores
  beside the event loop's. Each read then costs more CPU: preempted threads, shared objects
  touched from several threads. A 20-row page of `GET /jobs` took 660 us of process CPU on 1
  read thread, 668 on 2, 767 on 4 and 919 on 40; a hop that does nothing, 10 us against
  anyio's 65.

So the hot reads run on `Settings.read_threads` threads: on SQLite, whose reads are CPU in
this process, one per core beside the event loop's; on a database server, whose reads mostly
wait on the network, more. The rest of the blocking work (writes, which may wait for a lock,
uploads, sync routes) stays on anyio's threads, where one slow call holds back no read.

A read runs in a copy of its caller's context (the request's log fields, as anyio does). If
its caller is cancelled, the read still finishes on its thread and its result is dropped:
only reads, with nothing to undo, come here. The threads start on first use in a process (a
forked worker starts its own), and live as long as it does, like anyio's."""

import asyncio
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from contextvars import Context, copy_context
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any


@dataclass(frozen=True, slots=True)
class _Read:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    context: Context
    function: Callable[..., Any]
    args: tuple[Any, ...]


class ReadThreads:
    """`size` threads taking reads from one queue, each answering its caller's event loop."""

    def __init__(self, size: int = 1) -> None:
        _check(size)
        self._lock = threading.Lock()
        self._queue: SimpleQueue[_Read | None] = SimpleQueue()
        self._size = size
        self._started = 0  # threads started in this process, not yet told to stop
        self._pid: int | None = None

    def resize(self, size: int) -> None:
        """From now on, `size` threads: more are started on the next read, and the extra
        ones stop after the reads already queued."""
        _check(size)
        with self._lock:
            self._size = size
            if self._pid == os.getpid():
                while self._started > size:
                    self._queue.put(None)
                    self._started -= 1

    async def run[T](self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on one of the threads; its result, or its exception, here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._pid != os.getpid() or self._started < self._size:
            self._start()
        self._queue.put(_Read(loop, future, copy_context(), function, args))
        return await future

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child inherits the parent's queue and counts, but no thread.
                self._queue = SimpleQueue()
                self._started = 0
                self._pid = os.getpid()
            while self._started < self._size:
                # In an empty context: each read brings its caller's.
                threading.Thread(
                    target=self._serve,
                    args=(self._queue,),
                    name=f"nogil-bench-read-{self._started}",
                    daemon=True,
                    context=Context(),
                ).start()
                self._started += 1

    @staticmethod
    def _serve(queue: SimpleQueue[_Read | None]) -> None:
        while True:
            read = queue.get()
            if read is None:
                return
            _answer(read)
            del read  # not kept alive while this thread waits for the next


def _check(size: int) -> None:
    if size < 1:
        raise ValueError(f"read threads: {size}; at least 1")


def _answer(read: _Read) -> None:
    try:
        result = read.context.run(read.function, *read.args)
    except BaseException as error:  # the caller's to handle, as if it had run there
        outcome: tuple[Any, BaseException | None] = (None, error)
    else:
        outcome = (result, None)
    with suppress(RuntimeError):  # raised if the caller's loop is closed: no one is waiting
        read.loop.call_soon_threadsafe(_settle, read.future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the caller was cancelled: the read's result is dropped
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


READS = ReadThreads()
