"""Reading a submission's body: JSON (a synthetic source) or multipart (uploaded images)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anyio import CancelScope
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from nogil_bench.core.config import Settings
from nogil_bench.core.errors import (
    BadRequestError,
    InvalidInputError,
    UnsupportedMediaTypeError,
)
from nogil_bench.core.storage import FileStore
from nogil_bench.jobs import service
from nogil_bench.jobs.schemas import (
    MAX_PIPELINE_STEPS,
    PIPELINE_EXAMPLE,
    BatchCreate,
    JobCreate,
    StepIn,
)
from nogil_bench.runners import runners

DEFAULT_RUNNER = "threads"
DEFAULT_WORKERS = 2
_PIPELINE = TypeAdapter(list[StepIn])


@dataclass(frozen=True, slots=True)
class UploadForm:
    uploads: list[service.Upload]
    pipeline: list[StepIn]
    runner: str
    workers: int


def form_schema(files_field: str, *, many: bool) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    return {
        "type": "object",
        "required": [files_field, "pipeline"],
        "properties": {
            files_field: (
                {"type": "array", "items": binary, "description": "PNG, JPEG or WebP images."}
                if many
                else {**binary, "description": "A PNG, JPEG or WebP image."}
            ),
            "pipeline": {
                "type": "string",
                "description": "The steps, as a JSON list.",
                "example": json.dumps(PIPELINE_EXAMPLE),
            },
            "runner": {"type": "string", "enum": list(runners()), "default": DEFAULT_RUNNER},
            "workers": {"type": "integer", "default": DEFAULT_WORKERS},
        },
    }


def body_kind(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in {"application/json", "multipart/form-data"}:
        return content_type
    raise UnsupportedMediaTypeError(
        f"send application/json (a synthetic source) or multipart/form-data (uploaded images), "
        f"not {content_type or 'a body without a Content-Type'}"
    )


async def read_json[M: BaseModel](request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        text = body.decode()  # JSON is UTF-8 (RFC 8259)
    except UnicodeDecodeError as error:
        raise BadRequestError(f"the body cannot be read: {error}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        raise RequestValidationError(
            error.errors(include_url=False, include_context=False)
        ) from None


async def read_upload_form(
    request: Request, *, files_field: str, many: bool, settings: Settings, store: FileStore
) -> UploadForm:
    # A few more than allowed, so that "too many" gets our 422 rather than a parser error.
    max_files = settings.MAX_BATCH_IMAGES + 1 if many else 1
    # The parser spools each file to a temporary file (memory only up to 1 MiB each).
    form = await request.form(max_files=max_files, max_fields=16)
    try:
        files = [item for item in form.getlist(files_field) if isinstance(item, UploadFile)]
        if not files:
            raise InvalidInputError(f"the multipart body has no file in the {files_field!r} field")
        service.check_batch_size(len(files), settings)
        named = [
            (file.filename or f"{files_field}[{index}]", file) for index, file in enumerate(files)
        ]
        for filename, file in named:
            service.check_upload_size(filename, file.size or 0, settings)
        # Every field is checked before any file is stored.
        pipeline = _pipeline(_text(form.get("pipeline"), "pipeline"))
        runner = _text(form.get("runner", DEFAULT_RUNNER), "runner")
        workers = _whole_number(
            _text(form.get("workers", str(DEFAULT_WORKERS)), "workers"), "workers"
        )
        uploads: list[service.Upload] = []
        try:
            for filename, file in named:
                await file.seek(0)
                stream = file.file
                uploads.append(
                    await run_in_threadpool(service.store_upload, stream, filename, settings, store)
                )
        except BaseException:
            await discard(uploads, store)
            raise
        return UploadForm(uploads, pipeline, runner, workers)
    finally:
        await form.close()


async def read_submission(
    request: Request, settings: Settings, store: FileStore, *, batch: bool
) -> tuple[service.ExecutionSpec, list[service.Source]]:
    """A job's or batch's checked runner, workers and pipeline, and its sources, from a JSON or
    multipart body. Uploaded files are stored by then; on an error here they are removed."""
    sources: list[service.Source]
    body: JobCreate | BatchCreate | UploadForm
    if body_kind(request) == "multipart/form-data":
        body = await read_upload_form(
            request,
            files_field="images" if batch else "image",
            many=batch,
            settings=settings,
            store=store,
        )
        sources = [*body.uploads]
    elif batch:
        body = await read_json(request, BatchCreate)
        service.check_batch_size(body.source.count, settings)
        sources = [*service.expand_set(body.source)]
    else:
        body = await read_json(request, JobCreate)
        sources = [body.source]
    try:
        spec = service.check_spec(
            runner=body.runner, workers=body.workers, pipeline=body.pipeline, settings=settings
        )
    except BaseException:
        await discard(sources, store)
        raise
    return spec, sources


async def discard(sources: Sequence[service.Source], store: FileStore) -> None:
    """Removes the uploads among `sources`: off the event loop, and to the end even when the
    request is being cancelled."""
    with CancelScope(shield=True):
        await run_in_threadpool(service.discard_uploads, sources, store)


def _text(value: object, field: str) -> str:
    if value is None:
        raise InvalidInputError(f"the multipart body has no {field!r} field")
    if not isinstance(value, str):
        raise InvalidInputError(f"{field!r} must be a text field, not a file")
    return value


def _whole_number(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"{field} must be a whole number, got {text!r}") from None


def _pipeline(text: str) -> list[StepIn]:
    try:
        steps = _PIPELINE.validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'pipeline'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        raise InvalidInputError(f"pipeline is not a JSON list of steps: {problems}") from None
    if not 1 <= len(steps) <= MAX_PIPELINE_STEPS:
        raise InvalidInputError(
            f"pipeline must have 1 to {MAX_PIPELINE_STEPS} steps, got {len(steps)}"
        )
    return steps
