"""Health for anyone (liveness, readiness, the interpreter), package versions for a logged-in
user, and Prometheus metrics, behind a bearer token when METRICS_TOKEN is set."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.core import metrics, runtime
from nogil_bench.core.db import database_answers
from nogil_bench.core.deps import SettingsDep
from nogil_bench.core.errors import NotAuthenticatedError
from nogil_bench.core.openapi import UNAUTHENTICATED
from nogil_bench.health.schemas import Health, HealthDetails, Liveness, Readiness

router = APIRouter(prefix="/health", tags=["health"])
# Under /api/v1, with the routes that need a user.
details_router = APIRouter(prefix="/health", tags=["health"], responses=UNAUTHENTICATED)


def _health() -> Health:
    return Health(
        status="ok",
        python_version=runtime.python_version(),
        implementation=runtime.implementation(),
        free_threaded=runtime.is_free_threaded_build(),
        gil_enabled=runtime.is_gil_enabled(),
        cpu_count=runtime.cpu_count(),
    )


@router.get("", summary="The service is up, and what interpreter runs it")
def read_health() -> Health:
    return _health()


@details_router.get(
    "/details", summary="The same, with the versions of the packages that serve and run the work"
)
def read_health_details(_: CurrentUser) -> HealthDetails:
    return HealthDetails(**_health().model_dump(), packages=runtime.package_versions())


# The liveness answer never changes: its bytes, made once. A model built, checked and
# serialised per probe took ~10 us of the event loop's thread each time.
ALIVE = Liveness(status="alive").model_dump_json().encode()


@router.get(
    "/live",
    summary="Liveness: the process and its event loop answer",
    response_model=Liveness,
    response_class=JSONResponse,
)
async def read_liveness() -> Response:
    # Async on purpose: it is answered by the event loop itself, and touches nothing else.
    return Response(ALIVE, media_type="application/json")


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
# auto_error=False: a missing token is our 401 with WWW-Authenticate, like a wrong one.
scrape_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="NOGIL_BENCH_METRICS_TOKEN, when the service has one.",
)


def check_scrape_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scrape_bearer)],
) -> None:
    """Nothing to check without METRICS_TOKEN; otherwise a bearer token equal to it."""
    if settings.METRICS_TOKEN is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(
        given.encode(), settings.METRICS_TOKEN.get_secret_value().encode()
    ):
        raise NotAuthenticatedError(
            "GET /metrics needs 'Authorization: Bearer <token>', the service's "
            "NOGIL_BENCH_METRICS_TOKEN"
        )


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(check_scrape_token)],
    # The token is optional: without METRICS_TOKEN the route answers anyone (`{}` says so).
    openapi_extra={"security": [{}]},
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {
            **UNAUTHENTICATED[401],
            "description": "METRICS_TOKEN is set, and the request does not bear it",
        },
    },
)
def read_metrics() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
