"""One user's HTTP client for a live `nogil-bench serve` (tests/utils/live_server.py)."""

import hashlib
from collections.abc import Callable
from typing import Any

import httpx2

from tests.utils.api import PURE_PIPELINE, Headers
from tests.utils.live_server import LiveServer
from tests.utils.waiting import wait_until

API = "/api/v1"
SECRET_KEY = "a-test-secret-that-outlives-restarts-0123456789"
PASSWORD = "a fine password"
POLL_TIMEOUT_S = 120.0


class Client:
    """One user's view of the live service, kept across its restarts (same port, same key)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        email = "restarts@example.com"
        credentials = {"email": email, "password": PASSWORD}
        registered = httpx2.post(f"{server.url}{API}/auth/register", json=credentials)
        assert registered.status_code == 201, registered.text
        token = httpx2.post(
            f"{server.url}{API}/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
        self.headers: Headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, **kwargs: Any) -> httpx2.Response:
        url = f"{self.server.url}{API}{path}"
        return httpx2.post(url, headers=self.headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        url = f"{self.server.url}{API}{path}"
        return httpx2.get(url, headers=self.headers, timeout=30, **kwargs)

    def refused_by_the_drain(self) -> httpx2.Response:
        """Right after a stop signal: a submission's answer once the drain has begun. The body
        lacks its pipeline, so that a request the signal's handler has not yet overtaken (the
        signal and the request race) is refused with 422 and stores nothing; the drain answers
        503 before the body is read."""

        def refused() -> httpx2.Response | None:
            response = self.post("/jobs", json={"source": {"width": 8, "height": 8}})
            return None if response.status_code == 422 else response

        try:
            found = wait_until(refused, "a submission refused by the drain", timeout_s=10)
        except AssertionError as never:
            state, output = self.server.signal_state(), self.server.output()
            raise AssertionError(f"{never}\n{state}\nthe server's log:\n{output}") from None
        assert found is not None
        return found

    def submit_batch(self, count: int, side: int, runner: str) -> str:
        body = {
            "source": {"count": count, "width": side, "height": side, "seed": 100},
            "pipeline": PURE_PIPELINE,
            "runner": runner,
            "workers": 2,
        }
        response = self.post("/batches", json=body)
        assert response.status_code == 202, response.text
        batch_id: str = response.json()["id"]
        return batch_id

    def wait_for(
        self, batch_id: str, condition: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The batch, once `condition(batch)` holds."""

        def batch_if_so() -> dict[str, Any] | None:
            batch: dict[str, Any] = self.get(f"/batches/{batch_id}").json()
            return batch if condition(batch) else None

        found = wait_until(batch_if_so, what, timeout_s=POLL_TIMEOUT_S)
        assert found is not None
        return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
