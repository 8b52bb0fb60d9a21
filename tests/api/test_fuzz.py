"""Property-based fuzzing of every operation in /openapi.json (schemathesis), with a real token:
no request may get a server error, and every response must match the schema (a documented
status code, content type, headers and body). Bodies come in every documented media type (JSON,
the url-encoded login form, multipart uploads), and each operation is fuzzed on SQLite and on
PostgreSQL (the `client` fixture's stores), which refuse different strings (a NUL, say)."""

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.python import asgi

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from tests.utils.api import Headers

# Where the calls are addressed; they go straight to the test's app, in process.
BASE_URL = f"http://{asgi.HOST}"
LOGIN_EXAMPLES = 200


# Every check runs on every operation, relaxed in two places only; 25 examples an operation,
# more for one:
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 25},
        "operations": [
            # The executor is stopped here (see below), so readiness rightly answers its
            # documented 503, "executor: not running".
            {
                "include-name": "GET /health/ready",
                "checks": {
                    "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}
                },
            },
            # A body that fits the schema can still be refused with a 422 naming the limit,
            # where JSON Schema cannot say it: the settings' limits (max_workers,
            # max_synthetic_side, max_batch_images), each operation's parameters in a pipeline,
            # the runners that cannot run native steps, a password's 72 bytes in UTF-8. And a
            # submission may meet its documented overload answers: the rate limit (429) or a
            # full queue (429 per user, 503 for the service), as a fuzzer's flood does.
            {
                "include-name": [
                    "POST /api/v1/auth/register",
                    "POST /api/v1/jobs",
                    "POST /api/v1/batches",
                    "POST /api/v1/benchmarks",
                ],
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "404", "409", "422", "429", "503"]
                    }
                },
            },
            # More examples for a login, which takes what a client types: the fuzzer favours
            # short strings, and a password over bcrypt's 72 bytes (the 500 of issue 21) comes
            # up in about 1 example in 100.
            {
                "include-name": "POST /api/v1/auth/token",
                "generation": {"max-examples": LOGIN_EXAMPLES},
            },
        ],
    }
)


def served_openapi() -> schemathesis.BaseSchema:
    """The document GET /openapi.json serves. Serving it needs no running app (no lifespan)."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    document = TestClient(app).get("/openapi.json")
    document.raise_for_status()
    return schemathesis.openapi.from_dict(document.json(), config=CONFIG)


# Loaded when collected: schemathesis 4.32's fixture-based loading (`from_fixture`) reads
# `Function._nodeid`, which pytest 9 no longer has.
schema = served_openapi()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The service's settings, the login and registration limits out of reach: past them every
    attempt is a 429 (documented, so accepted) and the rest of the examples would try nothing."""
    settings.LOGIN_RATE_LIMIT = settings.LOGIN_FAILURE_LIMIT = "100000/minute"
    settings.REGISTER_RATE_LIMIT = "100000/minute"
    return settings


@schema.parametrize()
@hypothesis_settings(
    deadline=2000,
    derandomize=True,  # the same cases on every run, so a CI failure replays
    # One app per operation, shared by its examples, as a real server would be.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_without_server_errors_and_as_documented(
    case: schemathesis.Case[Any],
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
) -> None:
    # `paused`: fuzzing is about the HTTP surface; running what it submits would only compete
    # for the CPU (tests/api runs real work), so submissions stay queued.
    # Not entered as a context: the TestClient runs the app's lifespan; this only sends requests.
    session = asgi.get_client(client.app)  # type: ignore[arg-type]
    case.call_and_validate(base_url=BASE_URL, session=session, headers=alice)
