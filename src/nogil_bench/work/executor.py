"""The embedded executor: one thread that takes queued work in FIFO order and runs it.

Single jobs, batches and benchmarks share one queue, ordered by their UUIDv7 ids (creation
time). One execution runs at a time per process, so two batches or benchmarks never share the
CPUs and never skew each other's timings; requests only read and write rows meanwhile.

Several service processes may share one database: claims, leases and attempts follow the
rules in `work.queue`, the same for every kind of work and for Celery workers.
"""

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from loguru import logger
from sqlalchemy import Engine

from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.metrics import BrokerQueues
from nogil_bench.core.models import utc_now
from nogil_bench.core.work import Claim, Context
from nogil_bench.retention import purge_expired
from nogil_bench.work.queue import (
    claim_next,
    recover_expired,
    renew_leases,
    requeue_own_work,
    run_claimed,
)

RETENTION_SWEEP_S = 3600.0


def lower_priority(niceness: int) -> None:
    """This thread, and the threads and processes it starts from now on, yield the CPU to the
    rest of the service (Linux: nice values are per thread, and inherited)."""
    if niceness and sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def keep_interrupts_from_children() -> None:
    """Blocks SIGINT in this thread, and so in every process it starts: the signal mask survives
    fork and exec, so pool workers, the forkserver and the benchmark engine's workers have it
    blocked from their first instruction. Ctrl+C signals the whole process group; the service
    decides how its children stop (the drain), and the main thread still takes the signal. A
    handler set in a worker's initializer would leave a window while the worker boots."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class Executor:
    """Runs queued work on one thread. `boot_id` names this service process on the rows it
    runs, so the next start can tell work a dead process left running."""

    def __init__(
        self, engine: Engine, settings: Settings, boot_id: uuid.UUID, name: str | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.boot_id = boot_id
        self.name = name or settings.WORKER_NAME or runtime.process_name("service")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._drained: bool | None = None
        # Set when a drain gave up on running work: its rows are back in the queue, and a
        # failure of that work (its pool stopped under it) must not be written over them.
        self._abandoned = threading.Event()
        # What runs ask of this process; running work stops between its steps once stopping.
        self.context = Context(engine, settings, boot_id, self.name, self._stopping.is_set)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nogil-bench-executor", daemon=True)
        self._thread.start()
        self._heartbeat = threading.Thread(
            target=self._beat, name="nogil-bench-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        """Renews this process's leases, and requeues work whose lease ran out elsewhere.
        Runs until the executor thread has ended (a drain still holds its leases)."""
        interval_s = self.settings.LEASE_SECONDS / 3
        next_purge = time.monotonic()  # retention runs at start, then every RETENTION_SWEEP_S
        while self._thread is not None and self._thread.is_alive():
            try:
                renew_leases(self.engine, self.boot_id, self.settings.LEASE_SECONDS)
                if recover_expired(self.engine, self.settings.MAX_ATTEMPTS):
                    self.notify()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + RETENTION_SWEEP_S
                    purge_expired(self.engine, self.settings, utc_now())
            except Exception:
                logger.exception("heartbeat: could not renew leases, recover or purge")
            self._thread.join(interval_s)

    def broker_check(self) -> str | None:
        """With a broker: "ok", or why it does not answer; None when there is none."""
        return None

    def queue_depths(self) -> BrokerQueues:
        """With a broker: the tasks waiting in each of its queues, and kept in each one's
        dead letters; none without one."""
        return BrokerQueues({}, {})

    def dead_letters(self, queues: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """With a broker: up to `limit` dead letters of each of `queues` (jobs, benchmarks),
        as `dead_letters.described` shows them; none without one (nothing is dead-lettered
        when the service runs its queue itself)."""
        return []

    def notify(self) -> None:
        """New work was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Finish the current chunk, leave the rest queued; True when the thread ended."""
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def drain(self, grace_s: float, cut_short: threading.Event | None = None) -> bool:
        """Take no more work and let what runs finish, for up to `grace_s` seconds (or until
        `cut_short` is set). Work still running then goes back to the queue for the next
        start. True when nothing was left running. Once drained, later calls return at once."""
        with self._drain_lock:
            if self._drained is None:
                self._drained = False  # stays so if the drain fails: it is not tried twice
                self._drained = self._drain(grace_s, cut_short or threading.Event())
            return self._drained

    @property
    def drained(self) -> bool | None:
        """None before a drain; then whether it ended with nothing left running."""
        return self._drained

    def _drain(self, grace_s: float, cut_short: threading.Event) -> bool:
        logger.info("draining: running work may finish within {} s, queued work stays", grace_s)
        deadline = time.monotonic() + grace_s
        self.stop(timeout_s=0)
        while self.alive and not cut_short.is_set() and time.monotonic() < deadline:
            self.stop(timeout_s=min(0.1, max(0.0, deadline - time.monotonic())))
        if not self.alive:
            logger.info("drained: no work left running")
            return True
        why = "stop requested again" if cut_short.is_set() else f"{grace_s} s grace period over"
        self._abandoned.set()
        requeued = requeue_own_work(self.engine, self.boot_id)
        logger.warning(
            "{}: put back in the queue what was still running ({}); it resumes at the next start",
            why,
            ", ".join(f"{count} {kind}" for kind, count in requeued.items()) or "nothing",
        )
        return False

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for: no more work will be taken."""
        return self._stopping.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        lower_priority(self.settings.EXECUTOR_NICENESS)
        keep_interrupts_from_children()
        logger.info("executor started")
        while not self._stopping.is_set():
            try:
                worked = self.run_next()
            except Exception:
                logger.exception("executor: an execution failed")
                worked = True
            if not worked:
                self._wake.wait(self.settings.EXECUTOR_POLL_SECONDS)
                self._wake.clear()
        logger.info("executor stopped")

    def run_next(self) -> bool:
        """Run the oldest queued work; False when the queue is empty."""
        claim = claim_next(self.engine, self.boot_id, self.settings.LEASE_SECONDS, self.name)
        if claim is None:
            return False
        self.run_claim(claim)
        return True

    def run_claim(self, claim: Claim) -> None:
        """Runs work claimed for this process; a failure is written on its rows."""
        run_claimed(self.context, claim, self._abandoned.is_set)
