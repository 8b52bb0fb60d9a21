"""Share by link (issue 24): the owner of a benchmark makes a link that reads its report without
logging in, lists the live ones and revokes them; only a hash of each link's token is stored,
and every token that reads nothing (revoked, unknown, malformed) gets the same 404."""

import base64
import hashlib
import secrets
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from sqlalchemy import Engine, text
from sqlmodel import Session

from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import BenchmarkSpec
from nogil_bench.core.config import Settings
from nogil_bench.core.logging import LATER
from nogil_bench.core.models import Status, utc_now
from nogil_bench.main import create_app
from tests.utils.api import BENCHMARKS, PAGE_CSP, Headers, register_and_login

SHARED = "/api/v1/shared"
SHARED_PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# What a finished benchmark measured: the smallest images benchmark the API takes.
SPEC = BenchmarkSpec(
    count=2,
    width=8,
    height=8,
    seed=0,
    pipeline=[{"op": "invert", "params": {}}],  # type: ignore[list-item]
    runners=["sequential", "threads"],
    workers=[1],
    gil=[0],
    repeats=4,
    max_repeats=4,
    block_rounds=2,
    warmups=0,
).model_dump(mode="json")


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def user_id(client: TestClient, headers: Headers) -> uuid.UUID:
    return uuid.UUID(client.get("/api/v1/users/me", headers=headers).json()["id"])


def finished_benchmark(client: TestClient, owner: Headers) -> str:
    """The URL of a finished benchmark of `owner`'s, stored as a run leaves one (without a
    document: its page says there are no results), so that no test here measures anything."""
    row = Benchmark(
        owner_id=user_id(client, owner),
        spec=SPEC,
        status=Status.SUCCEEDED,
        started_at=utc_now(),
        finished_at=utc_now(),
    )
    url = f"{BENCHMARKS}/{row.id}"
    with Session(engine_of(client)) as session:
        session.add(row)
        session.commit()
    return url


def share(client: TestClient, benchmark_url: str, owner: Headers) -> dict[str, Any]:
    """A new link to the benchmark: its id, url and created_at."""
    response = client.post(f"{benchmark_url}/share", headers=owner)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def token_of(link: dict[str, Any]) -> str:
    url: str = link["url"]
    return url.rsplit("/", 1)[1]


def stored_shares(client: TestClient) -> list[dict[str, Any]]:
    """Every row of the share links' table, every column."""
    with engine_of(client).connect() as connection:
        rows = connection.execute(text("SELECT * FROM benchmark_share"))
        return [dict(row._mapping) for row in rows]


@pytest.fixture
def benchmark_url(client: TestClient, alice: Headers) -> str:
    """A finished benchmark of alice's."""
    return finished_benchmark(client, alice)


def test_a_shared_link_reads_the_report_logged_out_on_a_locked_down_page(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    link = share(client, benchmark_url, alice)

    page = client.get(link["url"])  # no Authorization header

    assert set(link) == {"id", "url", "created_at"}
    assert link["url"].startswith(f"http://testserver{SHARED}/")
    assert page.status_code == 200
    assert {name: page.headers.get(name) for name in SHARED_PAGE_HEADERS} == SHARED_PAGE_HEADERS
    assert page.text.lstrip().lower().startswith("<!doctype html>")


def test_the_link_is_absolute_on_the_address_the_owner_used(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    response = client.post(f"https://bench.example.org{benchmark_url}/share", headers=alice)

    assert response.status_code == 201
    assert response.json()["url"].startswith(f"https://bench.example.org{SHARED}/")


def test_a_shared_page_shows_neither_the_owners_email_nor_their_user_id(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    owner_id = user_id(client, alice)

    page = client.get(share(client, benchmark_url, alice)["url"])

    assert page.status_code == 200
    for identifying in ("alice@example.com", str(owner_id), owner_id.hex):
        assert identifying not in page.text


def test_a_revoked_link_answers_404_exactly_as_an_unknown_or_malformed_token(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    link = share(client, benchmark_url, alice)
    assert client.get(link["url"]).status_code == 200

    revoked = client.delete(f"{benchmark_url}/share/{link['id']}", headers=alice)

    assert revoked.status_code == 204
    answers = [
        client.get(link["url"]),
        client.get(f"{SHARED}/{secrets.token_urlsafe(32)}"),  # never made
        client.get(f"{SHARED}/{token_of(link)[:-1]}"),  # one character short
        client.get(f"{SHARED}/x"),
        client.get(f"{SHARED}/{'A' * 500}"),
        client.get(f"{SHARED}/not%20a%20token!"),
    ]
    assert {(answer.status_code, answer.text) for answer in answers} == {(404, answers[0].text)}
    assert client.get(f"{SHARED}/{token_of(link)}/more").status_code == 404  # no route there
    assert answers[0].headers["content-type"] == "application/json"
    assert token_of(link) not in answers[0].text


def test_revoking_every_link_of_a_benchmark_at_once(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    links = [share(client, benchmark_url, alice) for _ in range(2)]

    revoked = client.delete(f"{benchmark_url}/share", headers=alice)

    assert revoked.status_code == 204
    assert [client.get(link["url"]).status_code for link in links] == [404, 404]
    assert client.get(f"{benchmark_url}/share", headers=alice).json() == {"data": [], "count": 0}
    assert stored_shares(client) == []


def test_revoking_one_link_leaves_the_others_working(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    kept, revoked = share(client, benchmark_url, alice), share(client, benchmark_url, alice)

    client.delete(f"{benchmark_url}/share/{revoked['id']}", headers=alice)

    assert client.get(kept["url"]).status_code == 200
    assert client.get(revoked["url"]).status_code == 404
    again = client.delete(f"{benchmark_url}/share/{revoked['id']}", headers=alice)
    assert again.status_code == 404


def test_the_owner_lists_the_live_links_newest_first_without_their_urls(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    first, second, third = (share(client, benchmark_url, alice) for _ in range(3))
    client.delete(f"{benchmark_url}/share/{second['id']}", headers=alice)

    listed = client.get(f"{benchmark_url}/share", headers=alice)

    assert listed.status_code == 200
    assert listed.json() == {
        "data": [
            {"id": third["id"], "created_at": third["created_at"]},
            {"id": first["id"], "created_at": first["created_at"]},
        ],
        "count": 2,
    }
    assert all(token_of(link) not in listed.text for link in (first, second, third))


def test_a_link_is_listed_under_its_own_benchmark_only(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    other_url = finished_benchmark(client, alice)
    link = share(client, benchmark_url, alice)

    revoked = client.delete(f"{other_url}/share/{link['id']}", headers=alice)

    assert revoked.status_code == 404
    assert client.get(f"{other_url}/share", headers=alice).json()["count"] == 0
    assert client.get(link["url"]).status_code == 200


def test_another_user_cannot_share_list_or_revoke_a_benchmark_not_theirs(
    client: TestClient, alice: Headers, bob: Headers, benchmark_url: str
) -> None:
    link = share(client, benchmark_url, alice)
    unknown_url = f"{BENCHMARKS}/{uuid.uuid7()}"

    answers = {
        "share": client.post(f"{benchmark_url}/share", headers=bob),
        "list": client.get(f"{benchmark_url}/share", headers=bob),
        "revoke all": client.delete(f"{benchmark_url}/share", headers=bob),
        "revoke one": client.delete(f"{benchmark_url}/share/{link['id']}", headers=bob),
        "share an unknown id": client.post(f"{unknown_url}/share", headers=bob),
    }

    assert {what: answer.status_code for what, answer in answers.items()} == dict.fromkeys(
        answers, 404
    )
    assert client.get(link["url"]).status_code == 200
    assert client.get(f"{benchmark_url}/share", headers=alice).json()["count"] == 1


def test_the_share_routes_need_a_login(client: TestClient, benchmark_url: str) -> None:
    assert client.post(f"{benchmark_url}/share").status_code == 401
    assert client.get(f"{benchmark_url}/share").status_code == 401
    assert client.delete(f"{benchmark_url}/share").status_code == 401


def test_a_token_has_at_least_128_random_bits_and_only_its_sha256_is_stored(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    link = share(client, benchmark_url, alice)
    token = token_of(link)

    rows = stored_shares(client)

    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 16
    assert token_of(share(client, benchmark_url, alice)) != token
    assert rows[0]["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in rows[0].values())


def test_deleting_the_benchmark_deletes_its_links(
    client: TestClient, alice: Headers, benchmark_url: str
) -> None:
    link = share(client, benchmark_url, alice)

    deleted = client.delete(benchmark_url, headers=alice)

    assert deleted.status_code == 204
    assert stored_shares(client) == []
    assert client.get(link["url"]).status_code == 404


def test_shared_pages_are_rate_limited_per_address_guesses_included(settings: Settings) -> None:
    limited = settings.model_copy(update={"SHARED_PAGE_RATE_LIMIT": "2/minute"})
    app = create_app(limited)
    with TestClient(app) as client:
        # Another address, on the same running app (not entered: the lifespan runs once).
        elsewhere = TestClient(app, client=("203.0.113.7", 50000))
        alice = register_and_login(client, "alice@example.com")
        link = share(client, finished_benchmark(client, alice), alice)
        for _ in range(2):
            assert client.get(f"{SHARED}/{secrets.token_urlsafe(32)}").status_code == 404

        refused = client.get(link["url"])

        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "the limit is 2 per 1 minute" in refused.json()["detail"]
        assert elsewhere.get(link["url"]).status_code == 200


def test_the_shared_page_is_documented_without_a_login_with_its_404_and_429(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()

    shared = document["paths"][f"{SHARED}/{{token}}"]["get"]

    assert "security" not in shared
    assert set(shared["responses"]) >= {"200", "404", "429"}
    assert "401" not in shared["responses"]
    assert "text/html" in shared["responses"]["200"]["content"]
    assert "Retry-After" in shared["responses"]["429"]["headers"]


def test_the_token_never_reaches_the_logs(
    client: TestClient, benchmark_url: str, alice: Headers
) -> None:
    token = token_of(share(client, benchmark_url, alice))
    lines: list[str] = []
    # The service's own lines (the test's HTTP client logs the URLs it asks for, as a
    # browser's history would hold them: that is the reader's side, not the service's).
    sink_id = logger.add(
        lambda message: lines.append(str(message) + repr(message.record["extra"])),
        filter=lambda record: not (record["name"] or "").startswith("httpx"),
    )
    try:
        assert client.get(f"{SHARED}/{token}").status_code == 200
        assert client.get(f"{SHARED}/{token}x").status_code == 404
        LATER.flush()  # access lines are logged on a thread of their own
    finally:
        logger.remove(sink_id)

    assert any("/api/v1/shared/[redacted]" in line for line in lines)  # the access lines
    assert not any(token in line for line in lines)
