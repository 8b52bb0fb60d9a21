"""What FastAPI cannot declare itself: one route taking JSON or multipart, and the error
responses the routes share, so that every status a route can answer is in its `responses`."""

from typing import Any

from pydantic import BaseModel

from nogil_bench.core.errors import ErrorPublic

type Responses = dict[int | str, dict[str, Any]]


def error_response(status_code: int, description: str) -> Responses:
    """One documented error, with the `{"detail": ...}` body every AppError has."""
    return {status_code: {"model": ErrorPublic, "description": description}}


# Every route behind CurrentUser.
UNAUTHENTICATED: Responses = {
    401: {
        "model": ErrorPublic,
        "description": "No bearer token, or an invalid or expired one",
        "headers": {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}
        },
    }
}
# Every route that takes an id: another user's ids are not found either.
NOT_FOUND = error_response(404, "No such id among yours")
# Every route that reads a body; the size limit is per route (see core/limits.py).
BODY_ERRORS: Responses = {
    **error_response(400, "The body cannot be read at all, e.g. it is not UTF-8"),
    **error_response(413, "The request body is over this route's limit"),
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs substituted in, so it stands alone anywhere."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_or_multipart(json_model: type[BaseModel], form: dict[str, Any]) -> dict[str, Any]:
    """An `openapi_extra` describing a body that is either `json_model` or the multipart form."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": inline_schema(json_model)},
                "multipart/form-data": {"schema": form},
            },
        }
    }
