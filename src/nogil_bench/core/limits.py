"""Request body limits, enforced while the body streams in: an oversized upload is refused with
413 after at most `limit` bytes, never read whole into memory or onto disk."""

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nogil_bench.core.errors import PayloadTooLargeError

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limits: Mapping[tuple[str, str], int],
        default_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default_bytes = default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), self.default_bytes)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > limit:
            refusal = JSONResponse(
                {"detail": _message(int(declared), limit)},
                status_code=413,
                headers={"Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(_message(received, limit))
            return message

        await self.app(scope, limited_receive, send)


def _message(size_bytes: int, limit: int) -> str:
    return f"the request body is {size_bytes} bytes or more, over this route's limit of {limit}"
