"""Keeps FastAPI from working out each parameter's facts again on every request.

For each path, query, header and cookie parameter of a route, on every request, FastAPI 0.165's
`request_params_to_args` asks four questions of the parameter's field:
- is its annotation a pydantic model (`_get_param_model`)?
- under which names may it be sent (`_get_param_aliases`)?
- is it `Json[...]` (`_is_json_field`)?
- is its annotation a sequence (`field_annotation_is_sequence`)?

Each answer is typing introspection (`get_origin`, `get_args`, `issubclass`), fixed once the
route is built, since FastAPI never changes a field it has made. On 3.14t, five optional query
parameters like those of `GET /jobs` cost 36 us a request in a bare app, and 15 us with the
answers kept (docs/serving.md, "The list page at its target").

`install()` replaces the four functions in `fastapi.dependencies.utils`, where the request path
looks them up, by equal ones that remember their answers:
- the first three on the field itself, so an answer lives exactly as long as its field (the
  per-request fields that dependency overrides build go with them);
- the fourth by annotation: the routes' annotations are a fixed set.

Two threads asking at once at worst both compute the same answer. `fastapi.openapi.utils`
imports two of the four by value, so building the OpenAPI document (once, then cached) asks
FastAPI's own.

Only the FastAPI release these were read against is patched (`FASTAPI_VERSION`). Another one
runs unpatched, and tests/test_fastapi_memo.py, which checks that the patch is in place, fails
until someone reads the new release's functions again.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

import fastapi
from fastapi._compat import ModelField
from fastapi.dependencies import utils

FASTAPI_VERSION = "0.165.0"

# Where a field keeps its remembered answers (a `ModelField` is a plain dataclass).
_ANSWERS = "_nogil_bench_answers"

# The functions replaced, by name, as FastAPI defines them; filled by `install()`.
ORIGINALS: dict[str, Callable[..., Any]] = {}


def _per_field(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function(field, **options)`, remembered on the field for each set of options."""

    @wraps(function)
    def remembered(field: ModelField, **options: Any) -> Any:
        key = (name, *sorted(options.items())) if options else name
        answers: dict[object, Any] | None = field.__dict__.get(_ANSWERS)
        if answers is None:
            answers = field.__dict__.setdefault(_ANSWERS, {})
        try:
            return answers[key]
        except KeyError:
            answer = answers[key] = function(field, **options)
            return answer

    return remembered


def _per_annotation(function: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`function(annotation)`, remembered for each annotation that can be a dict's key."""
    answers: dict[Any, bool] = {}

    @wraps(function)
    def remembered(annotation: Any) -> bool:
        try:
            return answers[annotation]
        except KeyError:
            answer = answers[annotation] = function(annotation)
            return answer
        except TypeError:  # unhashable: asked each time, as FastAPI does
            return function(annotation)

    return remembered


def install() -> bool:
    """Patches FastAPI if it is the release read (`FASTAPI_VERSION`); True if patched (now or
    before). Safe to call again."""
    if installed():
        return True
    if fastapi.__version__ != FASTAPI_VERSION:
        return False
    functions = vars(utils)
    for name in ("_get_param_model", "_get_param_aliases", "_is_json_field"):
        ORIGINALS[name] = functions[name]
        functions[name] = _per_field(name, ORIGINALS[name])
    name = "field_annotation_is_sequence"  # imported there from fastapi._compat
    ORIGINALS[name] = functions[name]
    functions[name] = _per_annotation(ORIGINALS[name])
    return True


def installed() -> bool:
    """True when the request path's four functions are the remembering ones."""
    functions = vars(utils)
    return bool(ORIGINALS) and all(
        functions[name] is not original for name, original in ORIGINALS.items()
    )
