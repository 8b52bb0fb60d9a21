"""/docs documents every route and works offline: Swagger UI's assets come from the app."""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app

ROUTES = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/users/me"),
    ("get", "/api/v1/ops"),
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job_id}"),
    ("delete", "/api/v1/jobs/{job_id}"),
    ("get", "/api/v1/jobs/{job_id}/result"),
    ("post", "/api/v1/batches"),
    ("get", "/api/v1/batches"),
    ("get", "/api/v1/batches/{batch_id}"),
    ("post", "/api/v1/benchmarks"),
    ("get", "/api/v1/benchmarks"),
    ("get", "/api/v1/benchmarks/{benchmark_id}"),
    ("get", "/api/v1/benchmarks/{benchmark_id}/chart"),
    ("get", "/api/v1/workloads"),
}


def openapi(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def test_every_route_is_documented_with_a_summary(client: TestClient) -> None:
    paths = openapi(client)["paths"]

    documented = {(method, path) for path, item in paths.items() for method in item}

    assert documented >= ROUTES
    for method, path in ROUTES:
        assert paths[path][method]["summary"]


def test_submissions_document_both_json_and_multipart_bodies_with_examples(
    client: TestClient,
) -> None:
    paths = openapi(client)["paths"]

    for path, files_field in (("/api/v1/jobs", "image"), ("/api/v1/batches", "images")):
        content = paths[path]["post"]["requestBody"]["content"]
        assert "$ref" not in str(content["application/json"]["schema"])
        assert content["application/json"]["schema"]["properties"]["pipeline"]["examples"]
        form = content["multipart/form-data"]["schema"]
        assert files_field in form["required"]
        assert "example" in form["properties"]["pipeline"]


def test_responses_have_schemas(client: TestClient) -> None:
    paths = openapi(client)["paths"]

    job = paths["/api/v1/jobs/{job_id}"]["get"]["responses"]["200"]
    assert job["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobPublic"
    }


def test_swagger_ui_authorizes_against_the_token_route(client: TestClient) -> None:
    schemes = openapi(client)["components"]["securitySchemes"]

    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


def test_docs_load_swagger_ui_from_the_app_not_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = client.get(f"/static/swagger-ui/{asset}")
        assert served.status_code == 200
        assert len(served.content) > 10_000


def test_swagger_ui_shows_every_section_in_the_declared_order(client: TestClient) -> None:
    document = openapi(client)
    used = {
        tag
        for operations in document["paths"].values()
        for operation in operations.values()
        for tag in operation.get("tags", [])
    }

    # Declared, so the order does not follow the order the routes are tried in (below).
    assert [tag["name"] for tag in document["tags"]][:4] == ["health", "auth", "users", "jobs"]
    assert {tag["name"] for tag in document["tags"]} == used
    assert all(tag["description"] for tag in document["tags"])


def test_the_most_asked_routes_are_tried_first(client: TestClient) -> None:
    # FastAPI answers with the first route that matches, after trying those before it, so
    # the probes and the reads every client polls are tried before the rest of the API.
    app = client.app
    assert isinstance(app, FastAPI)
    tried = [
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if context.path != "/openapi.json"  # FastAPI adds it before any other
        for method in sorted(context.methods or ())
    ]

    assert tried[:6] == [
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/api/v1/users/me"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/{job_id}"),
    ]
    assert tried.index(("POST", "/api/v1/auth/token")) < tried.index(("GET", "/metrics"))
    assert tried[-1] == ("GET", "/docs/oauth2-redirect")


class RouteRecorder:
    """Notes which route answered each HTTP request (FastAPI puts it in the request's scope)."""

    def __init__(self, app: ASGIApp, answered: list[object]) -> None:
        self.app = app
        self.answered = answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            # An API route is named; a plain route (`/openapi.json`), by its endpoint.
            self.answered.append(scope.get("route") or scope.get("endpoint"))


def test_no_route_is_hidden_by_one_tried_before_it(settings: Settings) -> None:
    # Routes are tried in the order of use, not of the code (above): each must still answer
    # its own path, with a value in each of its parameters. Nobody is logged in, so nothing
    # changes; the route is chosen before any dependency answers.
    app = create_app(settings)
    answered: list[object] = []
    app.add_middleware(RouteRecorder, answered=answered)
    routes = [
        (context.route, str(context.path), context.methods)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.route, APIRoute | Route) and context.path and context.methods
    ]
    assert len(routes) > 30

    with TestClient(app) as client:
        for route, template, methods in routes:
            path = re.sub(r"\{[^}]+\}", "01a2455b-1759-70e9-a72a-b172d941b952", template)
            for method in methods:
                client.request(method, path)
                assert answered.pop() in (route, route.endpoint), f"{method} {template}"
