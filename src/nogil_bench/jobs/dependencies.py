import uuid
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.auth.models import UserRecord
from nogil_bench.core.db import EngineDep
from nogil_bench.core.deps import SettingsDep
from nogil_bench.core.errors import ServiceUnavailableError
from nogil_bench.core.ratelimit import RateLimiter
from nogil_bench.core.work import WorkQueue
from nogil_bench.jobs import service
from nogil_bench.jobs.models import Batch, Job


def valid_job(job_id: uuid.UUID, engine: EngineDep, user: CurrentUser) -> Job:
    with Session(engine) as session:
        return service.get_job(session=session, owner_id=user.id, job_id=job_id)


def valid_batch(batch_id: uuid.UUID, engine: EngineDep, user: CurrentUser) -> Batch:
    with Session(engine) as session:
        return service.get_batch(session=session, owner_id=user.id, batch_id=batch_id)


async def queue_taking_work(request: Request, settings: SettingsDep) -> WorkQueue:
    """The process's driver (executor or dispatcher), for a submission to notify; 503 with
    Retry-After while the service drains."""
    if request.app.state.draining:
        retry_after_s = settings.SHUTDOWN_GRACE_SECONDS
        raise ServiceUnavailableError(
            f"the service is shutting down and takes no new work; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
    queue: WorkQueue = request.app.state.executor
    return queue


async def submitter(request: Request, user: CurrentUser, settings: SettingsDep) -> UserRecord:
    """The logged-in user, if under their submission rate limit (else 429 with Retry-After)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(settings.SUBMISSION_RATE_LIMIT, "submit", str(user.id), what="submissions")
    return user


# For the OpenAPI `responses` of every route that takes Submitter.
OVERLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Over your submission rate limit, or your queue is full; retry after "
        "`Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    503: {
        "description": "Shutting down, or the service's queue is full, or the database is "
        "busy: nothing was stored; retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}

OwnedJob = Annotated[Job, Depends(valid_job)]
Submitter = Annotated[UserRecord, Depends(submitter)]
OwnedBatch = Annotated[Batch, Depends(valid_batch)]
WorkQueueDep = Annotated[WorkQueue, Depends(queue_taking_work)]
