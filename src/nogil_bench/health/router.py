from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from nogil_bench.core import metrics, runtime
from nogil_bench.core.db import database_answers
from nogil_bench.health.schemas import Health, Liveness, Readiness

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


@router.get(
    "/ready",
    summary="Readiness: the database (and broker) answer, the executor takes work, not draining",
    responses={503: {"model": Readiness, "description": "A check failed; `checks` says which"}},
)
def read_readiness(request: Request) -> JSONResponse:
    state = request.app.state
    checks = {"database": "ok", "executor": "ok", "draining": "ok"}
    try:
        database_answers(state.engine)
    except SQLAlchemyError as error:
        checks["database"] = f"not answering: {error.__cause__ or error}"
    if not state.executor.alive:
        checks["executor"] = "not running"
    elif state.executor.stopping:
        checks["executor"] = "stopping: not taking work"
    if state.draining:
        checks["draining"] = "shutting down: not taking new work"
    if (broker := state.executor.broker_check()) is not None:
        checks["broker"] = broker
    ready = all(result == "ok" for result in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def read_metrics() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
