"""The interface every kind of queued work implements, and what its drivers hand it."""

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sqlalchemy import ColumnElement, Engine
from sqlmodel import Session

from nogil_bench.core.config import Settings
from nogil_bench.core.models import QueuedWork


class WorkQueue(Protocol):
    """What a route needs of the process's driver: to hear that work was queued."""

    def notify(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Claim:
    """Work of `kind` claimed (marked running) by this process."""

    kind: str
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the dispatcher hands a worker elsewhere: work `id` of `kind` whole, or the rows
    of it named in `part` (a chunk of a batch, in id order)."""

    kind: str
    id: uuid.UUID
    part: tuple[uuid.UUID, ...] = ()

    @property
    def fifo_key(self) -> uuid.UUID:
        """Its oldest row's id: UUIDv7s sort by creation time, so sorting by it is FIFO."""
        return self.part[0] if self.part else self.id


@dataclass(frozen=True, slots=True)
class Context:
    """What a run needs from the process running it: `boot_id` and `worker` name it on the
    rows it writes; `should_stop` turns true at a shutdown."""

    engine: Engine
    settings: Settings
    boot_id: uuid.UUID
    worker: str
    should_stop: Callable[[], bool]


class WorkKind(ABC):
    """One kind of queued work: the table of its rows and how to run and fail one. Claiming,
    leases, attempts and putting back are the same for every kind (`work.queue`); a kind
    says only what differs."""

    name: ClassVar[str]
    table: ClassVar[type[QueuedWork]]
    # With a broker: the queue it goes to, named by the kind of work its workers take
    # (`nogil-bench worker --queues`), so that each kind of worker scales on its own.
    queue: ClassVar[str] = "jobs"
    # With a broker: handed out in parts (`run_part`), never whole.
    delivered_in_parts: ClassVar[bool] = False
    # A run that died with its process counts towards MAX_ATTEMPTS, past which the row fails;
    # False where the row's parts carry the attempts instead (a batch's jobs).
    fails_after_max_attempts: ClassVar[bool] = True
    # A new attempt restarts the clock (`started_at`); False keeps the first start.
    restarts_clock: ClassVar[bool] = False

    def claimable(self) -> Sequence[ColumnElement[bool]]:
        """Conditions, besides being queued, for a row of `table` to be claimed whole."""
        return ()

    @abstractmethod
    def run(self, context: Context, work_id: uuid.UUID) -> None:
        """Runs claimed work to its end and writes its outcome; raises when it failed whole
        (the driver then fails it with `fail`)."""

    @abstractmethod
    def lock(self, session: Session, work_id: uuid.UUID) -> None:
        """Locks the work's rows (FOR UPDATE) in the order a drain's requeue locks them,
        jobs by id, then batches, then benchmarks, so that a failure and a requeue cannot
        deadlock. SQLite renders no FOR UPDATE: its write lock covers it."""

    @abstractmethod
    def fail(self, session: Session, work_id: uuid.UUID, boot_id: uuid.UUID, error: str) -> None:
        """After `lock`: fails what of the work `boot_id` still runs, and its parts never
        started, with `error`. Not committed."""

    # With a broker: what the dispatcher hands out, and what a worker does with a part.

    def dispatched(self) -> tuple[type[QueuedWork], Sequence[ColumnElement[bool]]]:
        """The table whose queued rows are handed out for this kind, and which of them: its
        own claimable rows unless its parts go out instead."""
        return self.table, self.claimable()

    def deliveries(self, rows: Sequence[QueuedWork]) -> list[Delivery]:
        """What to send for these dispatched rows: by default each row whole."""
        return [Delivery(self.name, row.id) for row in rows]

    def run_part(self, context: Context, delivery: Delivery) -> int:
        """Runs the rows of `delivery.part` still queued; returns how many ran."""
        raise TypeError(f"{self.name} work is handed out whole, not in parts")

    def settle(self, engine: Engine) -> int:
        """Finishes work whose parts have all finished elsewhere; returns how many."""
        return 0
