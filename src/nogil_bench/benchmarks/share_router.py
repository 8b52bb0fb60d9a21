"""Share links: the owner makes, lists and revokes them; anyone holding one reads the page."""

import uuid

from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session

from nogil_bench.auth.router import client_address, rate_limited
from nogil_bench.benchmarks import pages, sharing
from nogil_bench.benchmarks.dependencies import OwnedBenchmark
from nogil_bench.benchmarks.share_schemas import (
    ShareLinkCreated,
    ShareLinkPublic,
    ShareLinksPublic,
)
from nogil_bench.core.db import EngineDep
from nogil_bench.core.deps import Limit, Offset, SettingsDep
from nogil_bench.core.openapi import NOT_FOUND, UNAUTHENTICATED, error_response
from nogil_bench.core.ratelimit import RateLimiter
from nogil_bench.reports.responses import html_response

router = APIRouter(prefix="/benchmarks", tags=["benchmarks"], responses=UNAUTHENTICATED)
# No login here: the token in the path is the credential.
shared_router = APIRouter(prefix="/shared", tags=["shared"])

SHARED_PAGE = "read_shared_benchmark"


@router.post(
    "/{benchmark_id}/share",
    status_code=status.HTTP_201_CREATED,
    summary="Make a link that reads the benchmark's report without logging in (shown once)",
    responses={
        201: {"description": "The link, with its URL: shown this once, as only a hash is kept"},
        **NOT_FOUND,
    },
)
def create_share_link(
    benchmark: OwnedBenchmark, request: Request, engine: EngineDep
) -> ShareLinkCreated:
    share, token = sharing.create_share(engine=engine, benchmark_id=benchmark.id)
    return ShareLinkCreated(
        id=share.id, created_at=share.created_at, url=str(request.url_for(SHARED_PAGE, token=token))
    )


@router.get(
    "/{benchmark_id}/share",
    summary="The benchmark's live share links, newest first (their URLs are not stored)",
    responses=NOT_FOUND,
)
def list_share_links(
    benchmark: OwnedBenchmark, engine: EngineDep, limit: Limit = 20, offset: Offset = 0
) -> ShareLinksPublic:
    with Session(engine) as session:
        shares, count = sharing.list_shares(
            session=session, benchmark_id=benchmark.id, limit=limit, offset=offset
        )
    return ShareLinksPublic(
        data=[ShareLinkPublic(id=share.id, created_at=share.created_at) for share in shares],
        count=count,
    )


@router.delete(
    "/{benchmark_id}/share",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke every share link of the benchmark: they answer 404 from now on",
    responses={
        204: {"description": "Revoked, however many there were (none is fine)"},
        **NOT_FOUND,
    },
)
def revoke_share_links(benchmark: OwnedBenchmark, engine: EngineDep) -> Response:
    sharing.revoke_shares(engine=engine, benchmark_id=benchmark.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{benchmark_id}/share/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one share link: it answers 404 from now on",
    responses={
        204: {"description": "Revoked"},
        **error_response(404, "No such benchmark among yours, or no such live link of it"),
    },
)
def revoke_share_link(
    benchmark: OwnedBenchmark, share_id: uuid.UUID, engine: EngineDep
) -> Response:
    sharing.revoke_share(engine=engine, benchmark_id=benchmark.id, share_id=share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@shared_router.get(
    # One path segment: a token never holds a slash (URL-safe base64), and a free-form path here
    # would let any client mint new metric labels (core/requests.route_template).
    "/{token}",
    name=SHARED_PAGE,
    summary="A shared benchmark's report, as an HTML page; no login, the token is the key",
    # Not HTMLResponse: FastAPI would then document the JSON errors as text/html too.
    response_class=Response,
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The report, without its owner. Scripts and remote loads are "
            "forbidden (Content-Security-Policy), and no Referer leaves the page",
            "headers": {
                name: {"required": True, "schema": {"type": "string"}}
                for name in (
                    "Content-Security-Policy",
                    "X-Content-Type-Options",
                    "Referrer-Policy",
                    "Cache-Control",
                )
            },
        },
        **error_response(404, "No such link, or it was revoked: the same answer for both"),
        **rate_limited("Too many shared pages read from this address"),
    },
)
def read_shared_benchmark(
    token: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    limiter: RateLimiter = request.app.state.rate_limiter
    # Counted before the look-up, found or not: guesses spend the limit too.
    limiter.hit(
        settings.SHARED_PAGE_RATE_LIMIT,
        "shared-page-from",
        client_address(request),
        what="shared pages read",
    )
    with Session(engine) as session:
        benchmark = sharing.shared_benchmark(session=session, token=token)
    return html_response(pages.benchmark_page(benchmark, shared=True), shared=True)
