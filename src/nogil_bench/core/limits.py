"""Request body limits, enforced while the body streams in: an oversized upload is refused with
413 after at most `limit` bytes, never read whole into memory or onto disk."""

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimit:
    max_bytes: int
    # What the limit is made of, named in the 413 so that a client knows what it ran into.
    made_of: str = "the default for a body"

    def refusal(self, size_bytes: int) -> str:
        return (
            f"the request body is {size_bytes} bytes or more, over this route's limit of "
            f"{self.max_bytes} bytes ({self.max_bytes / MIB:.4g} MiB: {self.made_of})"
        )


DEFAULT_BODY_LIMIT = BodyLimit(MIB)


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limits: Mapping[tuple[str, str], BodyLimit],
        default: BodyLimit = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), self.default)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > limit.max_bytes:
            refusal = JSONResponse(
                {"detail": limit.refusal(int(declared))},
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
                if received > limit.max_bytes:
                    # An HTTPException, which FastAPI's and Starlette's body parsers pass on as it
                    # is: any other error there becomes a 400 "cannot read the body".
                    raise HTTPException(413, detail=limit.refusal(received))
            return message

        await self.app(scope, limited_receive, send)
