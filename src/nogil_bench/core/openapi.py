"""Request bodies that FastAPI cannot declare itself: one route taking JSON or multipart."""

from typing import Any

from pydantic import BaseModel


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
