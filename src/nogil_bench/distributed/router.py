"""Operators' routes about the worker fleet: the dead letters, for admins only."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from nogil_bench.auth.dependencies import AdminUser
from nogil_bench.core.config import BrokerKind
from nogil_bench.core.deps import SettingsDep
from nogil_bench.core.errors import InvalidInputError, ServiceUnavailableError
from nogil_bench.core.openapi import UNAUTHENTICATED, error_response
from nogil_bench.work.executor import Executor
from nogil_bench.work.registry import WORK_QUEUES, queues_from

# What `queues` takes: "all", or kinds of work separated by commas.
QUEUES = f"^(all|({'|'.join(WORK_QUEUES)})(,({'|'.join(WORK_QUEUES)}))*)$"

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={**UNAUTHENTICATED, **error_response(403, "The user is not an admin")},
)


class DeadLetterPublic(BaseModel):
    id: str | None = Field(
        description="The Celery task's id: `nogil-bench dead-letters requeue ID`."
    )
    queue: str = Field(description="The work queue it came from: jobs or benchmarks.")
    task: str | None = Field(description="The task's name; nogil_bench.run unless not ours.")
    args: list[Any] | None = Field(description="Its arguments (kind of work, id[, part]).")
    reason: str = Field(
        description="undecodable, unknown_task, invalid, undeliverable or failed (Redis); "
        "rejected (RabbitMQ's x-death: the worker's log says why)."
    )
    detail: str | None = Field(description="The error, where the broker keeps it (Redis).")
    dead_at: datetime | None
    deaths: int = Field(description="How often it was dead-lettered.")


class DeadLettersPublic(BaseModel):
    broker: BrokerKind | None = Field(
        description="None: the service runs its queue itself, and keeps no dead letters."
    )
    dead_letters: list[DeadLetterPublic]


@router.get(
    "/dead-letters",
    summary="The tasks workers kept instead of running, oldest first (admins only)",
    responses={
        422: {"description": "`queues` names no kind of work, or `limit` is out of range"},
        **error_response(503, "The broker does not answer"),
    },
)
def read_dead_letters(
    request: Request,
    settings: SettingsDep,
    _: AdminUser,
    queues: Annotated[
        str, Query(description="jobs, benchmarks (comma-separated) or all", pattern=QUEUES)
    ] = "all",
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many per queue")] = 100,
) -> DeadLettersPublic:
    try:
        names = queues_from(queues)
    except ValueError as error:
        raise InvalidInputError(str(error)) from None
    executor: Executor = request.app.state.executor
    try:
        letters = executor.dead_letters(names, limit)
    except Exception as error:  # any transport error
        raise ServiceUnavailableError(
            f"the broker does not answer: {error}", headers={"Retry-After": "5"}
        ) from None
    return DeadLettersPublic(
        broker=settings.broker_kind,
        dead_letters=[DeadLetterPublic(**letter) for letter in letters],
    )
