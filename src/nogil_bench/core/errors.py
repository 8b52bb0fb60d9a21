"""One error hierarchy for the service; one handler turns each into `{"detail": message}`."""

from collections.abc import Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from loguru import logger
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

DATABASE_RETRY_AFTER_S = 1


class AppError(Exception):
    status_code: ClassVar[int] = 400
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        self.message = message
        self.headers = {**self.default_headers, **(headers or {})}
        super().__init__(message)


class NotAuthenticatedError(AppError):
    status_code = 401
    default_headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only by convention


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
    logger.warning("database unavailable for {} {}: {}", request.method, request.url.path, error)
    return JSONResponse(
        {"detail": f"the database is unavailable; retry in {DATABASE_RETRY_AFTER_S} s"},
        503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def install_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(OperationalError, _database_unavailable_handler)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable_handler)
