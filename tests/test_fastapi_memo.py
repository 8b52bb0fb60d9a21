"""FastAPI's per-parameter facts, remembered (core/fastapi_memo.py): in place on the FastAPI the
lock pins, equal to FastAPI's own answers for every parameter, and requests read parameters
exactly as before."""

import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Header, Query
from fastapi.dependencies import utils
from fastapi.dependencies.models import Dependant
from fastapi.testclient import TestClient
from pydantic import BaseModel, Json

from nogil_bench.core import fastapi_memo
from nogil_bench.main import create_app
from tests.utils.api import served_dependants


class Page(BaseModel):
    size: int = 10
    after: str | None = None


def exotic_app() -> FastAPI:
    """One route with each kind of parameter whose facts FastAPI works out."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    def read(
        item_id: int,
        q: str,
        tags: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
        item_ref: Annotated[uuid.UUID | None, Query(alias="item-ref")] = None,
        doc: Annotated[Json[list[int]], Query()] = [],  # noqa: B006
        x_token: Annotated[str | None, Header()] = None,
    ) -> dict[str, object]:
        return {
            "item_id": item_id,
            "q": q,
            "tags": tags,
            "item_ref": item_ref,
            "doc": doc,
            "x_token": x_token,
        }

    @app.get("/pages")
    def pages(page: Annotated[Page, Query()]) -> Page:
        return page

    return app


def parameter_fields(app: FastAPI) -> list[Any]:
    """The path, query, header and cookie fields of every route and of its dependencies, as
    FastAPI serves them."""

    def of(dependant: Dependant) -> list[Any]:
        fields = dependant.path_params + dependant.query_params + dependant.header_params
        fields += dependant.cookie_params
        for sub in dependant.dependencies:
            fields += of(sub)
        return fields

    return [field for dependant in served_dependants(app) for field in of(dependant)]


def is_sequence(annotation: object) -> bool:
    """The request path's `field_annotation_is_sequence`, as `fastapi.dependencies.utils` has
    it now (imported there, so not in its declared exports)."""
    answer: bool = vars(utils)["field_annotation_is_sequence"](annotation)
    return answer


@pytest.fixture(scope="module", autouse=True)
def patched() -> None:
    assert fastapi_memo.install()


def test_the_apps_factory_patches_the_fastapi_the_lock_pins() -> None:
    """In a fresh interpreter: nothing but `create_app` installs the patch there."""
    check = (
        "from nogil_bench.core import fastapi_memo\n"
        "assert not fastapi_memo.installed()\n"
        "from nogil_bench.main import create_app\n"
        "create_app()\n"
        "assert fastapi_memo.installed()\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=60)


def test_installing_again_changes_nothing() -> None:
    patched = {name: vars(utils)[name] for name in fastapi_memo.ORIGINALS}

    assert fastapi_memo.install()
    assert {name: vars(utils)[name] for name in fastapi_memo.ORIGINALS} == patched
    assert utils._get_param_model is not fastapi_memo.ORIGINALS["_get_param_model"]


@pytest.mark.parametrize("make_app", [create_app, exotic_app], ids=["service", "exotic"])
def test_each_answer_equals_fastapis_own(make_app: Callable[[], FastAPI]) -> None:
    fields = parameter_fields(make_app())
    assert len(fields) > 5
    for field in fields:
        for _ in range(2):  # worked out, then remembered
            for name in ("_get_param_model", "_is_json_field"):
                assert getattr(utils, name)(field) == fastapi_memo.ORIGINALS[name](field)
            for convert in (False, True):
                assert utils._get_param_aliases(
                    field, convert_underscores=convert
                ) == fastapi_memo.ORIGINALS["_get_param_aliases"](
                    field, convert_underscores=convert
                )
            annotation = field.field_info.annotation
            assert is_sequence(annotation) == fastapi_memo.ORIGINALS[
                "field_annotation_is_sequence"
            ](annotation)


def test_an_answer_is_remembered_on_its_field() -> None:
    field = next(f for f in parameter_fields(exotic_app()) if f.name == "tags")
    assert utils._get_param_model(field) is None

    # The remembered answer is the one given, not worked out again.
    field.__dict__["_nogil_bench_answers"]["_get_param_model"] = Page
    assert utils._get_param_model(field) is Page


def test_an_annotation_that_cannot_be_a_key_is_asked_each_time() -> None:
    unhashable = Annotated[list[int], {"not": "hashable"}]

    assert is_sequence(unhashable) is True
    assert is_sequence(Annotated[str, {"not": "hashable"}]) is False


def test_requests_read_every_kind_of_parameter_as_before() -> None:
    client = TestClient(exotic_app())
    ref = uuid.uuid4()

    answer = client.get(
        "/items/3",
        params=(
            ("q", "x"),
            ("tags", "a"),
            ("tags", "b"),
            ("item-ref", str(ref)),
            ("doc", "[1, 2]"),
        ),
        headers={"x-token": "secret"},
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "item_id": 3,
        "q": "x",
        "tags": ["a", "b"],
        "item_ref": str(ref),
        "doc": [1, 2],
        "x_token": "secret",
    }
    assert client.get("/pages", params={"size": 3}).json() == {"size": 3, "after": None}


def test_bad_parameters_are_refused_as_before() -> None:
    client = TestClient(exotic_app())

    answer = client.get("/items/three", params={"item-ref": "nope", "doc": "[1"})

    assert answer.status_code == 422
    locations = sorted(tuple(error["loc"]) for error in answer.json()["detail"])
    assert locations == [
        ("path", "item_id"),
        ("query", "doc"),
        ("query", "item-ref"),
        ("query", "q"),
    ]
    assert client.get("/pages", params={"size": "big"}).status_code == 422
