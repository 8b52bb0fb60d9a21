"""End to end, on real `nogil-bench serve` processes:

- an upload still being received holds no lock: reads and logins answer meanwhile;
- two processes on one database share the queue, each job claimed by one of them; after a
  `kill -9` of one, its jobs come back when its lease runs out and every job succeeds once.
"""

import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.utils.api import PURE_PIPELINE, expected_png, png
from tests.utils.live_client import API, PASSWORD, SECRET_KEY, Client, sha256
from tests.utils.live_server import LiveServer
from tests.utils.waiting import wait_until

READ_BUDGET_S = 2.0
LEASE_SECONDS = "2"
POLL_TIMEOUT_S = 180.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path, SECRET_KEY=SECRET_KEY)
    live.start()
    yield live
    live.kill_all()


def test_reads_and_logins_answer_while_a_large_upload_is_being_received(
    server: LiveServer,
) -> None:
    client = Client(server)
    image = png(2000, 2000)  # about 2 MB of PNG, sent in pieces with pauses
    boundary = "nogil-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="pipeline"\r\n\r\n'
        f'[{{"op": "invert"}}]\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()
    body = head + image + f"\r\n--{boundary}--\r\n".encode()
    request = (
        f"POST {API}/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {client.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as upload:
        upload.sendall(request + body[: len(body) // 2])
        time.sleep(0.3)  # the server is inside the request, waiting for the rest

        started = time.monotonic()
        me = client.get("/users/me")
        jobs = client.get("/jobs")
        login = httpx2.post(
            f"{server.url}{API}/auth/token",
            data={"username": "restarts@example.com", "password": PASSWORD},
        )
        elapsed_s = time.monotonic() - started

        upload.sendall(body[len(body) // 2 :])
        answer = upload.makefile("rb").readline()

    assert (me.status_code, jobs.status_code, login.status_code) == (200, 200, 200)
    assert elapsed_s < READ_BUDGET_S
    assert b" 202 " in answer, answer


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two processes on one data directory (one SQLite database, one outputs folder)."""
    shared = tmp_path / "shared-data"
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(
            LiveServer(
                tmp_path / name,
                SECRET_KEY=SECRET_KEY,
                DATA_DIR=str(shared),
                LEASE_SECONDS=LEASE_SECONDS,
                EXECUTOR_POLL_SECONDS="0.2",
            )
        )
    for server in servers:
        server.start()
    yield servers[0], servers[1]
    for server in servers:
        server.kill_all()


def rows(database: Path) -> dict[str, tuple[str, int, str | None]]:
    """Each job's (status, attempts, boot_id), read from the database file itself."""
    with sqlite3.connect(database) as connection:
        found = connection.execute("SELECT id, status, attempts, boot_id FROM job").fetchall()
    return {job_id: (status.lower(), attempts, boot) for job_id, status, attempts, boot in found}


def boot_of(server: LiveServer) -> str:
    """The boot id the server logged at start, as the database stores it (hex)."""
    match = re.search(r"boot ([0-9a-f-]{36}) \(pid", server.output())
    assert match, server.output()
    return match.group(1).replace("-", "")


def test_two_processes_share_the_queue_and_survive_a_kill_9_of_one(
    two_servers: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    first, second = two_servers
    database = tmp_path / "shared-data" / "nogil_bench.db"
    client = Client(first)
    side, count = 288, 24
    for index in range(count):
        body = {
            "source": {"width": side, "height": side, "seed": 500 + index},
            "pipeline": PURE_PIPELINE,
            "runner": "sequential",
        }
        target = (first, second)[index % 2]
        response = httpx2.post(
            f"{target.url}{API}/jobs", json=body, headers=client.headers, timeout=30
        )
        assert response.status_code == 202, response.text
    first_boot, second_boot = boot_of(first), boot_of(second)

    def first_is_mid_job() -> bool:
        return any(
            (status, boot) == ("running", first_boot) for status, _, boot in rows(database).values()
        )

    wait_until(
        first_is_mid_job,
        f"the first process ({first_boot}) running a job",
        timeout_s=POLL_TIMEOUT_S,
    )
    first.kill()
    left_running = {
        job_id
        for job_id, (status, _, boot) in rows(database).items()
        if status == "running" and boot == first_boot
    }
    assert left_running, "the kill landed mid-job"

    wait_until(
        lambda: all(status == "succeeded" for status, _, _ in rows(database).values()),
        "every job succeeded",
        timeout_s=POLL_TIMEOUT_S,
    )
    final = rows(database)
    assert len(final) == count
    ran_by = {boot for _, _, boot in final.values()}
    assert {first_boot, second_boot} <= ran_by, "both processes ran jobs"
    for job_id, (_, attempts, boot) in final.items():
        if job_id in left_running:
            assert (attempts, boot) == (2, second_boot), "the killed run counts, once"
        else:
            assert attempts == 1, f"job {job_id} ran {attempts} times"
    assert "which died: requeued" in second.output()

    jobs = httpx2.get(
        f"{second.url}{API}/jobs", params={"limit": 100}, headers=client.headers, timeout=30
    ).json()["data"]
    with ThreadPoolExecutor() as pool:
        expected = list(
            pool.map(lambda job: expected_png(side, side, job["seed"], PURE_PIPELINE), jobs)
        )
    for job, png_bytes in zip(jobs, expected, strict=True):
        output = httpx2.get(
            f"{second.url}{API}/jobs/{job['id']}/result", headers=client.headers, timeout=30
        )
        assert sha256(output.content) == sha256(png_bytes), f"job {job['id']}: wrong output"
