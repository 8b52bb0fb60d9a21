from fastapi import APIRouter

from nogil_bench.core import runtime
from nogil_bench.health.schemas import Health, Liveness

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", summary="The service is up, and what interpreter runs it")
def read_health() -> Health:
    return Health(
        status="ok",
        python_version=runtime.python_version(),
        implementation=runtime.implementation(),
        free_threaded=runtime.is_free_threaded_build(),
        gil_enabled=runtime.is_gil_enabled(),
        cpu_count=runtime.cpu_count(),
        packages=runtime.package_versions(),
    )


@router.get("/live", summary="Liveness: the process and its event loop answer")
async def read_liveness() -> Liveness:
    # Async on purpose: it is answered by the event loop itself, and touches nothing else.
    return Liveness(status="alive")
