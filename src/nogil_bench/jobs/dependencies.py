import uuid
from typing import Annotated, Any

from fastapi import Depends, Request

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.core.db import SessionDep
from nogil_bench.core.deps import SettingsDep
from nogil_bench.core.errors import ServiceUnavailableError
from nogil_bench.executor import Executor
from nogil_bench.jobs import service
from nogil_bench.jobs.models import Batch, Job


def valid_job(job_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Job:
    return service.get_job(session=session, owner_id=user.id, job_id=job_id)


def valid_batch(batch_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Batch:
    return service.get_batch(session=session, owner_id=user.id, batch_id=batch_id)


# For the OpenAPI `responses` of every route that takes ExecutorDep.
DRAINING_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Shutting down: no new work taken; retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}


def executor_taking_work(request: Request, settings: SettingsDep) -> Executor:
    """The executor, for a submission; 503 with Retry-After while the service drains."""
    if request.app.state.draining:
        retry_after_s = settings.SHUTDOWN_GRACE_SECONDS
        raise ServiceUnavailableError(
            f"the service is shutting down and takes no new work; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
    executor: Executor = request.app.state.executor
    return executor


OwnedJob = Annotated[Job, Depends(valid_job)]
OwnedBatch = Annotated[Batch, Depends(valid_batch)]
ExecutorDep = Annotated[Executor, Depends(executor_taking_work)]
