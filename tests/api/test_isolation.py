"""A user only ever sees their own work: another user's ids answer 404, as if they did not exist."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    SMALL_BENCHMARK,
    Headers,
    synthetic_job,
    wait_until_finished,
)


@pytest.fixture
def alices_work(client: TestClient, alice: Headers) -> dict[str, str]:
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    batch = client.post(
        BATCHES,
        headers=alice,
        json={"source": {"count": 2, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]},
    ).json()
    benchmark = client.post(BENCHMARKS, headers=alice, json=SMALL_BENCHMARK).json()
    wait_until_finished(client, f"{BENCHMARKS}/{benchmark['id']}", alice)
    return {"job": job["id"], "batch": batch["id"], "benchmark": benchmark["id"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs/{job}"),
        ("GET", "/api/v1/jobs/{job}/result"),
        ("DELETE", "/api/v1/jobs/{job}"),
        ("GET", "/api/v1/batches/{batch}"),
        ("DELETE", "/api/v1/batches/{batch}"),
        ("GET", "/api/v1/benchmarks/{benchmark}"),
        ("DELETE", "/api/v1/benchmarks/{benchmark}"),
        ("GET", "/api/v1/benchmarks/{benchmark}/chart"),
    ],
)
def test_another_users_ids_are_404(
    client: TestClient, bob: Headers, alices_work: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path.format(**alices_work), headers=bob)

    assert response.status_code == 404
    assert "no " in response.json()["detail"]


def test_another_users_work_is_not_listed(
    client: TestClient, alice: Headers, bob: Headers, alices_work: dict[str, str]
) -> None:
    for collection in (JOBS, BATCHES, BENCHMARKS):
        assert client.get(collection, headers=bob).json() == {"data": [], "count": 0}
        assert client.get(collection, headers=alice).json()["count"] >= 1
    assert client.get(JOBS, headers=bob, params={"batch_id": alices_work["batch"]}).json() == {
        "data": [],
        "count": 0,
    }


@pytest.mark.parametrize(
    ("kind", "collection"), [("job", JOBS), ("batch", BATCHES), ("benchmark", BENCHMARKS)]
)
def test_a_refused_delete_leaves_the_owners_work_alone(
    client: TestClient,
    alice: Headers,
    bob: Headers,
    alices_work: dict[str, str],
    kind: str,
    collection: str,
) -> None:
    url = f"{collection}/{alices_work[kind]}"
    before = client.get(url, headers=alice).json()

    client.delete(url, headers=bob)

    assert client.get(url, headers=alice).json() == before


def test_an_unknown_id_is_404_and_a_malformed_one_422(client: TestClient, alice: Headers) -> None:
    assert (
        client.get(f"{JOBS}/01a20000-0000-7000-8000-000000000000", headers=alice).status_code == 404
    )
    assert client.get(f"{JOBS}/42", headers=alice).status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/ops"),
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/batches"),
        ("POST", "/api/v1/batches"),
        ("GET", "/api/v1/benchmarks"),
        ("POST", "/api/v1/benchmarks"),
    ],
)
def test_every_job_route_requires_a_user(
    client: TestClient, method: str, path: str, paused: Callable[[], None]
) -> None:
    response = client.request(method, path, json=synthetic_job())

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
