import uuid
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.benchmarks import service
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.db import EngineDep


def valid_benchmark(benchmark_id: uuid.UUID, engine: EngineDep, user: CurrentUser) -> Benchmark:
    """The user's benchmark; another user's is not found, as an unknown id is."""
    with Session(engine) as session:
        return service.get_benchmark(session=session, owner_id=user.id, benchmark_id=benchmark_id)


OwnedBenchmark = Annotated[Benchmark, Depends(valid_benchmark)]
