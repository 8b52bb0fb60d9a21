"""Idempotency-Key: a retried submission returns the first answer instead of queueing twice."""

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    SMALL_BATCH,
    SMALL_BENCHMARK,
    Headers,
    png,
    stored_files,
    synthetic_job,
)


def keyed(headers: Headers, key: str) -> Headers:
    return headers | {"Idempotency-Key": key}


@pytest.mark.parametrize(
    ("collection", "body"),
    [(JOBS, synthetic_job()), (BATCHES, SMALL_BATCH), (BENCHMARKS, SMALL_BENCHMARK)],
)
def test_the_same_key_and_body_return_the_first_answer_and_queue_nothing_more(
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
    collection: str,
    body: dict[str, Any],
) -> None:
    headers = keyed(alice, str(uuid.uuid4()))

    first = client.post(collection, headers=headers, json=body)
    again = client.post(collection, headers=headers, json=body)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert client.get(collection, headers=alice).json()["count"] == 1


def test_the_same_key_with_another_body_is_refused_and_stores_nothing(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    headers = keyed(alice, "order-42")
    assert client.post(JOBS, headers=headers, json=synthetic_job()).status_code == 202

    other = client.post(JOBS, headers=headers, json=synthetic_job(workers=1))

    assert other.status_code == 422
    assert "order-42" in other.json()["detail"]
    assert "different request" in other.json()["detail"]
    assert client.get(JOBS, headers=alice).json()["count"] == 1


def test_a_key_used_on_another_route_is_a_different_request(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    headers = keyed(alice, "shared-key")
    assert client.post(JOBS, headers=headers, json=synthetic_job()).status_code == 202

    assert client.post(BATCHES, headers=headers, json=SMALL_BATCH).status_code == 422


def test_keys_that_differ_only_in_case_are_different_keys(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    """As the header's text, byte for byte, on every store: MySQL's usual collations would
    take "Order-7" and "order-7" for one key (the tables use a binary one)."""
    upper = client.post(JOBS, headers=keyed(alice, "Order-7"), json=synthetic_job())
    lower = client.post(JOBS, headers=keyed(alice, "order-7"), json=synthetic_job(workers=1))

    assert (upper.status_code, lower.status_code) == (202, 202)
    assert upper.json()["id"] != lower.json()["id"]
    assert client.get(JOBS, headers=alice).json()["count"] == 2


def test_keys_belong_to_their_user(
    client: TestClient, alice: Headers, bob: Headers, paused: Callable[[], None]
) -> None:
    alices = client.post(JOBS, headers=keyed(alice, "k1"), json=synthetic_job())
    bobs = client.post(JOBS, headers=keyed(bob, "k1"), json=synthetic_job())

    assert alices.status_code == bobs.status_code == 202
    assert alices.json()["id"] != bobs.json()["id"]


def test_formatting_does_not_matter_only_content(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    headers = keyed(alice, '"quoted-key"')  # a structured-field string, as the draft writes it
    body = synthetic_job()
    first = client.post(JOBS, headers=headers, json=body)
    reordered = dict(reversed(list(body.items())))

    again = client.post(JOBS, headers=keyed(alice, "quoted-key"), json=reordered)

    assert again.json()["id"] == first.json()["id"]


def test_a_replayed_upload_keeps_no_second_copy_of_the_file(
    client: TestClient, alice: Headers, paused: Callable[[], None], settings: Any
) -> None:
    def upload() -> Any:
        return client.post(
            JOBS,
            headers=keyed(alice, "upload-1"),
            files={"image": ("a.png", png(), "image/png")},
            data={"pipeline": '[{"op": "invert"}]'},
        )

    first, again = upload(), upload()

    assert again.json()["id"] == first.json()["id"]
    assert len(stored_files(settings)) == 1


def test_the_same_key_sent_at_once_many_times_queues_exactly_one_job(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    headers = keyed(alice, "burst")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: client.post(JOBS, headers=headers, json=synthetic_job()), range(16))
        )

    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert client.get(JOBS, headers=alice).json()["count"] == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey"])
def test_a_malformed_key_is_refused_by_name(client: TestClient, alice: Headers, key: str) -> None:
    response = client.post(JOBS, headers=keyed(alice, key), json=synthetic_job())

    assert response.status_code == 422
    assert "Idempotency-Key" in str(response.json()["detail"])
    assert client.get(JOBS, headers=alice).json()["count"] == 0
