"""No NUL character (U+0000) in any text a client sends, on every route and every store.

PostgreSQL's text cannot hold one: a query given one fails, and the request would end in a 500.
SQLite stores it, so without one rule the stores would disagree. This middleware refuses it
before any route, parser or query sees it, with the 422 FastAPI gives for a bad parameter
(`{"detail": [{"type", "loc", "msg"}]}`), its `loc` naming where: `["query", name]`,
`["header", name]`, `["path"]`, `["body", field, ...]` (a JSON body's path to the string, a form
field, or `[..., field, "filename"]` for an uploaded file's name).

Where it looks, as bytes, so nothing is parsed twice on the way through:
- the path, the query string (raw or %00) and every header (raw): before the app runs;
- the body of a POST, PUT or PATCH as the app reads it, until the answer starts: a JSON text
  (in UTF-8 a \\u0000 escape is its only way to hold a NUL), a url-encoded form (raw or %00),
  a multipart form's field names, text fields and file names,
  but not a file's content, which may hold any byte. The body is never held longer than the app
  holds it; a JSON or url-encoded one is parsed again only when it does contain a NUL, to name
  the field. A NUL found in the body is raised from `receive` as an HTTPException: FastAPI's body
  parsing and Starlette's form parser pass it through unchanged, as a 422 to the client.
"""

import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NUL_MESSAGE = "Text must not contain a NUL character (U+0000)"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
type Location = list[str | int]


def problem(location: Location) -> list[dict[str, Any]]:
    """The 422's `detail`, in the shape of FastAPI's validation errors."""
    return [{"type": "nul_character", "loc": location, "msg": NUL_MESSAGE}]


class NulCharacterMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        location = _in_request_line_or_headers(scope)
        if location is not None:
            refusal = JSONResponse({"detail": problem(location)}, status_code=422)
            await refusal(scope, receive, send)
            return
        # The first Content-Type, as Starlette reads it; only methods whose routes read a body.
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        body_check = _body_check(content_type) if scope["method"] in BODY_METHODS else None
        if body_check is None:
            await self.app(scope, receive, send)
            return
        responding = False

        async def noting_send(message: Message) -> None:
            nonlocal responding
            responding = responding or message["type"] == "http.response.start"
            await send(message)

        async def checked_receive() -> Message:
            message = await receive()
            # Once the answer has started, a receive is a disconnect listener's: never a 422.
            if message["type"] == "http.request" and not responding:
                location = body_check.feed(
                    message.get("body", b""), more=message.get("more_body", False)
                )
                if location is not None:
                    raise HTTPException(422, detail=problem(["body", *location]))
            return message

        await self.app(scope, checked_receive, noting_send)


def _in_request_line_or_headers(scope: Scope) -> Location | None:
    if "\0" in scope["path"]:
        return ["path"]
    name = _form_field_with_nul(scope["query_string"])
    if name is not None:
        return ["query", name]
    for header, value in scope["headers"]:
        if b"\0" in value:
            return ["header", header.decode("latin-1")]
    return None


def _form_field_with_nul(encoded: bytes) -> str | None:
    """The first url-encoded field whose name or value holds a NUL, raw or as %00."""
    if b"\0" not in encoded and b"%00" not in encoded:
        return None
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        if b"\0" in name or b"\0" in value:
            return name.decode("utf-8", "replace")
    return None


def _string_with_nul(document: Any) -> Location | None:
    """The path to a string in a parsed JSON document that holds a NUL, as a key or a value.
    Walked with a stack: a document may be nested as deep as the parser allows."""
    pending: list[tuple[Location, Any]] = [([], document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and "\0" in value:
            return path
        if isinstance(value, dict):
            for key, item in value.items():
                if "\0" in key:
                    return [*path, key]
                pending.append(([*path, key], item))
        elif isinstance(value, list):
            pending.extend(([*path, index], item) for index, item in enumerate(value))
    return None


class _WholeBodyCheck:
    """A JSON or url-encoded body, checked once it is all in (the app holds it all too)."""

    def __init__(self, *, form: bool) -> None:
        self.form = form
        self.chunks: list[bytes] = []

    def feed(self, chunk: bytes, *, more: bool) -> Location | None:
        self.chunks.append(chunk)
        if more:
            return None
        body, self.chunks = b"".join(self.chunks), []
        if self.form:
            name = _form_field_with_nul(body)
            return None if name is None else [name]
        # UTF-8 JSON holds a NUL only as \u0000; UTF-16 and UTF-32, which json.loads detects too,
        # hold NUL bytes in every text, so those are parsed whenever they come.
        if b"\\u0000" not in body and b"\0" not in body:
            return None
        try:
            document = json.loads(body)
        except ValueError, RecursionError:
            return None  # the app refuses a body that is not JSON, or nested too deep
        return _string_with_nul(document)


class _MultipartCheck:
    """Field names, file names and text fields, as the parts stream past; files' bytes pass."""

    def __init__(self, boundary: bytes) -> None:
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.field = ""
        self.is_text = False
        self.found: Location | None = None
        self.parser: MultipartParser | None = None
        # A boundary the app's parser refuses too (over 256 bytes, say) leaves it to that one.
        with contextlib.suppress(FormParserError):
            self.parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                },
            )

    def feed(self, chunk: bytes, *, more: bool) -> Location | None:
        if self.parser is None:
            return None
        try:
            self.parser.write(chunk)
        except FormParserError:
            self.parser = None  # the app's parser meets the same error and refuses the body
        return self.found

    def _on_part_begin(self) -> None:
        self.disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"name", b"")
        self.field = name.decode("utf-8", "replace")
        self.is_text = b"filename" not in options
        if self.found is None and b"\0" in name:
            self.found = [self.field]
        elif self.found is None and b"\0" in options.get(b"filename", b""):
            self.found = [self.field, "filename"]

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.found is None and self.is_text and data.find(b"\0", start, end) != -1:
            self.found = [self.field]


def _body_check(content_type: bytes) -> _WholeBodyCheck | _MultipartCheck | None:
    media_type, options = parse_options_header(content_type)
    if media_type == b"multipart/form-data":
        boundary = options.get(b"boundary")
        return _MultipartCheck(boundary) if boundary else None
    if media_type == b"application/x-www-form-urlencoded":
        return _WholeBodyCheck(form=True)
    # FastAPI reads a body without a Content-Type as JSON too.
    if media_type in {b"", b"application/json"} or media_type.endswith(b"+json"):
        return _WholeBodyCheck(form=False)
    return None
