"""Per-request context and the access log: a request id on every line and in the response,
one access line per request, a warning when slow, and a JSON 500 for unhandled errors."""

import re
import time
import uuid

from loguru import logger
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nogil_bench.core import metrics
from nogil_bench.core.logging import LATER, loggable_path, request_fields

REQUEST_ID_HEADER = "x-request-id"
# Accept a caller's id only when it is short and plain, so it cannot forge log lines.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The status logged and counted for a request whose client left before it was answered
# (nginx's "client closed request"); nothing is sent.
CLIENT_CLOSED_REQUEST = 499


def request_id_from(headers: dict[bytes, bytes]) -> str:
    given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
    return given if VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's full template (/api/v1/jobs/{job_id}), bounded in number for metric
    labels; "unmatched" otherwise. FastAPI puts the route, as its router declared it (without
    the prefixes it was included under), in the scope; its last segments match the path's."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return "unmatched"
    segments = template.rstrip("/").count("/")
    parts = scope["path"].rstrip("/").split("/")
    return "/".join(parts[: len(parts) - segments]) + template


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, slow_request_ms: float) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = request_id_from(headers)
        fields = {"request_id": request_id}
        token = request_fields.set(fields)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # Gone while its body was read (a load generator stopping, a closed tab): no one to
            # answer, and not the service's error.
            if not response_started:
                status = CLIENT_CLOSED_REQUEST
            logger.info(
                "client disconnected before {} {} was answered",
                scope["method"],
                loggable_path(scope["path"]),
            )
        except Exception:
            logger.exception(
                "unhandled error in {} {}", scope["method"], loggable_path(scope["path"])
            )
            if response_started:
                raise
            error = JSONResponse(
                {"detail": "internal server error", "request_id": request_id}, status_code=500
            )
            await error(scope, receive, send_with_id)
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            metrics.observe_request(
                scope["method"], route_template(scope), status, duration_ms / 1000
            )
            client = scope.get("client")
            path = loggable_path(scope["path"])
            # The line is logged on another thread (core.logging.LaterLines), with the
            # request's own fields (its id, the user once known) as they are now.
            access = {
                **fields,
                "logger_name": __name__,  # not the thread's module, core.logging
                "method": scope["method"],
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "client_ip": client[0] if client else None,
                "user_agent": headers.get(b"user-agent", b"").decode("latin-1"),
            }
            LATER.info("{method} {path} {status}", access)
            if duration_ms > self.slow_request_ms:
                logger.warning(
                    "slow request: {method} {path} took {took_ms:.0f} ms (threshold "
                    "{threshold_ms:.0f} ms)",
                    took_ms=duration_ms,
                    threshold_ms=self.slow_request_ms,
                    **access,
                )
            request_fields.reset(token)
