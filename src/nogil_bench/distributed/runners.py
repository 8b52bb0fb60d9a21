"""The celery runners: a map whose tasks run on Celery task workers, threads or prefork.

    nogil-bench task-worker --pool threads --concurrency 2     (on any machine)

`celery-threads` and `celery-prefork` send each task, sealed (pickled and signed with
SECRET_KEY), to their pool kind's queue and wait for the results through the broker. A run asks for
`workers` tasks at once; Celery cannot cap a run below its pool's size, so the workers on the
queue must offer exactly that many slots, and they must run in the caller's GIL mode: the
runner checks both and says what it found. It reports the workers it saw (`description`).

They register in the runner registry from here (entry points in pyproject.toml), so that
`runners/` never imports `distributed/`. Celery is imported when a run starts, not when the
registry loads them: only these runners need it.
"""

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from nogil_bench.core import runtime
from nogil_bench.runners.base import PoolLifecycle, TaskFailedError, pickling_problem

if TYPE_CHECKING:
    from celery import Celery
    from celery.result import GroupResult


class CeleryWorkersError(RuntimeError):
    """The celery runner cannot run as asked: no broker, no workers, or workers that differ from
    what the run asks for (slots, pool kind, GIL mode)."""


def reply_options(app: Celery) -> dict[str, str]:
    """On RabbitMQ (the `rpc://` backend), the replies' queue, declared before the tasks go.

    Celery declares it itself before each send, except in a worker's pool, where it assumes
    the worker's own app did (`task_join_will_block`): never this run's app, whose replies
    then had no queue and were dropped, and a batch on a celery runner in `nogil-bench worker`
    waited for its whole timeout. Named too: the backend consumes the queue of the first
    thread that asked, and a map may run on another."""
    if app.conf.result_backend != "rpc://":
        return {}
    from kombu.common import maybe_declare  # noqa: PLC0415

    backend: Any = app.backend
    with app.connection_for_write() as connection:
        maybe_declare(backend.binding(connection.default_channel), retry=True)
    return {"reply_to": backend.oid}


class CeleryRunner(PoolLifecycle):
    """Maps tasks over the Celery task workers of one pool kind."""

    pool: ClassVar[str]
    needs_broker: ClassVar[bool] = True

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self._app: Celery | None = None
        self._broker_url: str | None = None
        self._timeout_s: float | None = None
        self._key = b""
        self._running: GroupResult | None = None
        self.description: dict[str, Any] = {}
        self.ran_on: set[tuple[str, int]] = set()

    @property
    def queue(self) -> str:
        from nogil_bench.distributed.celery_app import TASK_QUEUES  # noqa: PLC0415

        return TASK_QUEUES[self.pool]

    @classmethod
    def unsupported_reason(cls, fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
        """Tasks travel pickled; whether the task workers can import fn's module is theirs."""
        return pickling_problem(fn, tasks)

    def _start(self) -> None:
        from nogil_bench.core.config import get_settings  # noqa: PLC0415
        from nogil_bench.distributed.celery_app import make_celery  # noqa: PLC0415
        from nogil_bench.distributed.tasks import signing_key  # noqa: PLC0415

        settings = get_settings()
        if settings.BROKER_URL is None:
            raise CeleryWorkersError(
                f"the {self.name} runner needs a broker: set NOGIL_BENCH_BROKER_URL and start "
                f"`nogil-bench task-worker --pool {self.pool} --concurrency {self.workers}`"
            )
        try:
            self._key = signing_key(settings)
        except ValueError as error:
            raise CeleryWorkersError(f"the {self.name} runner: {error}") from None
        self._broker_url = settings.BROKER_URL
        self._timeout_s = settings.EXECUTION_TIMEOUT_SECONDS
        app = make_celery(settings)
        try:
            self.description = self._inspect_workers(app, settings.broker_kind == "redis")
        except BaseException:
            app.close()
            raise
        self._app = app

    def _inspect_workers(self, app: Celery, on_redis: bool) -> dict[str, Any]:
        """The workers announced on this runner's queue, checked against what the run asks:
        `workers` slots in all, of this pool kind, in this process's GIL mode."""
        import redis  # noqa: PLC0415

        from nogil_bench.distributed import registry  # noqa: PLC0415

        assert self._broker_url is not None
        found = (
            registry.task_workers(redis.Redis.from_url(self._broker_url), self.queue)
            if on_redis
            else registry.broadcast_task_workers(app, self.queue)
        )
        start_hint = (
            f"`nogil-bench task-worker --pool {self.pool} --concurrency {self.workers}` "
            "(or several whose concurrencies add up to it)"
        )
        if not found:
            raise CeleryWorkersError(
                f"the {self.name} runner found no task worker on queue {self.queue!r}: "
                f"start {start_hint}"
            )
        listed = ", ".join(
            f"{w.hostname} {w.pool} x{w.concurrency} GIL {'on' if w.gil else 'off'}" for w in found
        )
        slots = sum(worker.concurrency for worker in found)
        if slots != self.workers or any(worker.pool != self.pool for worker in found):
            raise CeleryWorkersError(
                f"the {self.name} runner was asked for {self.workers} {self.pool} workers, but "
                f"the task workers on {self.queue!r} are: {listed}; Celery cannot run fewer "
                f"tasks at once than its pool offers: start {start_hint}"
            )
        gil = runtime.is_gil_enabled()
        if any(worker.gil != gil for worker in found):
            raise CeleryWorkersError(
                f"the {self.name} runner runs with the GIL {'on' if gil else 'off'}, but the "
                f"task workers on {self.queue!r} are: {listed}; start them with "
                f"PYTHON_GIL={int(gil)}"
            )
        return {
            "queue": self.queue,
            "pool": self.pool,
            "concurrency": slots,
            "workers": [
                {"hostname": w.hostname, "concurrency": w.concurrency, "gil": w.gil} for w in found
            ],
        }

    def map[T, R](self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        from celery import group  # noqa: PLC0415
        from celery.exceptions import TimeoutError as ResultTimeoutError  # noqa: PLC0415

        from nogil_bench.distributed.celery_app import MAP_TASK  # noqa: PLC0415
        from nogil_bench.distributed.sealed import Label, seal, unseal  # noqa: PLC0415

        if self._app is None:
            raise RuntimeError(f"use the {self.name} runner inside a `with` block")
        if not tasks:
            return []
        assert self._timeout_s is not None
        app, key = self._app, self._key
        # Each seal names its task and expires with the run: a replayed one is refused.
        deadline = time.time() + self._timeout_s
        task_ids = [str(uuid.uuid4()) for _ in tasks]
        reply = reply_options(app)
        signatures = [
            app.signature(
                MAP_TASK,
                args=(seal((fn, task), key, Label("task", task_id, deadline)),),
                queue=self.queue,
                task_id=task_id,
                **reply,
            )
            for task, task_id in zip(tasks, task_ids, strict=True)
        ]
        running = cast("GroupResult", group(signatures, app=app).apply_async())
        self._running = running
        try:
            # Each result in turn, as the broker delivers it. Not GroupResult.get: its join_native
            # waits half a second per poll, measured, which would be charged to every map.
            # Safe inside a task of `nogil-bench worker`: these tasks go to their own queue,
            # which that worker does not consume, so it never waits for itself.
            # One deadline for the whole map: the wait is what is left of it after sending.
            replies = running.join(
                timeout=max(0.0, deadline - time.time()),
                propagate=False,
                disable_sync_subtasks=False,
            )
            # Every reply was in by now; unsealing them one by one takes time of its own.
            received_at = time.time()
        except ResultTimeoutError:
            running.revoke()
            raise CeleryWorkersError(
                f"the {self.name} runner had no results within {self._timeout_s:g} s "
                f"(EXECUTION_TIMEOUT_SECONDS) from the task workers on {self.queue!r}: one may "
                "have died holding tasks, which the broker hands out again only after its "
                "visibility timeout; the rest were revoked"
            ) from None
        finally:
            self._running = None
            running.forget()
        gil_expected = runtime.is_gil_enabled()
        values: list[R] = []
        for index, reply in enumerate(replies):
            if isinstance(reply, BaseException):  # the task itself failed (e.g. a forged seal)
                raise TaskFailedError(self.name, index, tasks[index], reply) from reply
            opened = unseal(
                reply, key, purpose="reply", task_id=task_ids[index], received_at=received_at
            )
            ok, value, where = opened.value
            self.ran_on.add((where["worker"], where["pid"]))
            if where["gil"] != gil_expected:
                raise CeleryWorkersError(
                    f"the {self.name} runner's task ran on {where['worker']} with the GIL "
                    f"{'on' if where['gil'] else 'off'}, but this run has it "
                    f"{'on' if gil_expected else 'off'}: start the task workers with "
                    f"PYTHON_GIL={int(gil_expected)}"
                )
            if not ok:
                raise TaskFailedError(self.name, index, tasks[index], value) from value
            values.append(value)
        return values

    def environment(self) -> dict[str, Any]:
        """Where the work ran: the task workers' queue, pool kind and concurrency."""
        return {"celery": self.description}

    def _stop(self) -> None:
        """Closes this run's Celery app: its broker connections and result subscriptions."""
        if self._app is not None:
            self._app.close()
            self._app = None

    def _stop_abandoned(self) -> None:
        """Tasks not started yet are revoked; running ones cannot be stopped from here."""
        running = self._running  # read once: the map's thread clears it when it returns
        if running is not None:
            running.revoke()
        self._stop()


class CeleryThreadsRunner(CeleryRunner):
    """Celery task workers with the thread pool: parallel inside one process with the GIL off."""

    name = "celery-threads"
    order = 6
    pool = "threads"


class CeleryPreforkRunner(CeleryRunner):
    """Celery task workers with the prefork pool: a process per slot, as Celery has long
    recommended for CPU-bound work under the GIL."""

    name = "celery-prefork"
    order = 7
    pool = "prefork"
