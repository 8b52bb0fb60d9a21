import uuid
from typing import Annotated

from fastapi import Depends, Request

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.core.db import SessionDep
from nogil_bench.executor import Executor
from nogil_bench.jobs import service
from nogil_bench.jobs.models import Batch, Job


def valid_job(job_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Job:
    return service.get_job(session=session, owner_id=user.id, job_id=job_id)


def valid_batch(batch_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Batch:
    return service.get_batch(session=session, owner_id=user.id, batch_id=batch_id)


def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


OwnedJob = Annotated[Job, Depends(valid_job)]
OwnedBatch = Annotated[Batch, Depends(valid_batch)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
