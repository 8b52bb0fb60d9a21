"""One error hierarchy for the service; one handler turns each into `{"detail": message}`."""

from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class AppError(Exception):
    status_code: ClassVar[int] = 400
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotAuthenticatedError(AppError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only by convention


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


async def _app_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    return JSONResponse({"detail": error.message}, error.status_code, headers=error.headers)


def install_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
