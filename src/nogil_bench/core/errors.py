"""One error hierarchy for the service; one handler turns each into `{"detail": message}`."""

from collections.abc import Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from nogil_bench.core.logging import loggable_path

DATABASE_RETRY_AFTER_S = 1


class ErrorPublic(BaseModel):
    """The body of every error the service raises itself (422s from request validation list
    each problem instead)."""

    detail: str = Field(description="What went wrong, for a person to read.")


class AppError(Exception):
    status_code: ClassVar[int] = 400
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        self.message = message
        self.headers = {**self.default_headers, **(headers or {})}
        super().__init__(message)


class BadRequestError(AppError):
    """A request that cannot be read at all, e.g. a body that is not UTF-8."""

    status_code = 400


class NotAuthenticatedError(AppError):
    status_code = 401
    default_headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only by convention


class ForbiddenError(AppError):
    status_code = 403


class NotFoundError(AppError):
    status_code = 404


class ConflictError(AppError):
    status_code = 409


class PayloadTooLargeError(AppError):
    status_code = 413


class UnsupportedMediaTypeError(AppError):
    status_code = 415


class InvalidInputError(AppError):
    status_code = 422


class TooManyRequestsError(AppError):
    """Over a rate limit or a per-user quota: raise it with a Retry-After header."""

    status_code = 429


class ServiceUnavailableError(AppError):
    """Not now (the service is draining, say): raise it with a Retry-After header."""

    status_code = 503


async def _app_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    return JSONResponse({"detail": error.message}, error.status_code, headers=error.headers)


async def _database_unavailable_handler(request: Request, error: Exception) -> JSONResponse:
    # The database did not answer in time (pool exhausted, server down, lock held too long):
    # a moment's trouble, not a bug. Nothing was stored by the failed transaction.
    logger.warning(
        "database unavailable for {} {}: {}",
        request.method,
        loggable_path(request.url.path),
        error,
    )
    return JSONResponse(
        {"detail": f"the database is unavailable; retry in {DATABASE_RETRY_AFTER_S} s"},
        503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


# The methods a 405's `Allow` may list (RFC 9110's, less CONNECT).
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


async def _method_not_allowed_handler(request: Request, error: Exception) -> JSONResponse:
    """405 whose `Allow` lists every method of the resource. Starlette names only those of the
    first route matching the path, and GET /jobs and POST /jobs are two routes."""
    assert isinstance(error, HTTPException)
    allowed = [method for method in HTTP_METHODS if _routed(request, method)]
    headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
    return JSONResponse({"detail": error.detail}, error.status_code, headers=headers)


def _routed(request: Request, method: str) -> bool:
    scope = {"type": "http", "path": request.url.path, "root_path": "", "method": method}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


async def _unreadable_body_handler(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 400 for a body it cannot parse at all (not UTF-8, say), naming the cause."""
    assert isinstance(error, HTTPException)
    cause = error.__cause__
    detail = f"the body cannot be read: {cause}" if cause is not None else error.detail
    return JSONResponse({"detail": detail}, error.status_code, headers=error.headers)


def install_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(OperationalError, _database_unavailable_handler)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable_handler)
    app.add_exception_handler(400, _unreadable_body_handler)
    app.add_exception_handler(405, _method_not_allowed_handler)
