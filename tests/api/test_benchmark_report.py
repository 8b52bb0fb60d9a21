"""A benchmark's report page: the page `nogil-bench measure --html` writes, for its owner, drawn
from the measurement the benchmark stored; before that, its status."""

import base64
import json
import sys
import sysconfig
from collections.abc import Callable

from fastapi.testclient import TestClient

from nogil_bench.bench.document import from_json
from tests.utils.api import BENCHMARKS, PAGE_CSP, Headers, wait_until_finished, workload_benchmark

PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
}
FIB_ON_THREADS = workload_benchmark(runners=["threads"], workers=[2])


def downloaded(page: str, filename: str) -> object:
    """A download link's content: the page carries its data as a data: URL."""
    start = page.index(f'download="{filename}" href="data:application/json;base64,')
    encoded = page[start:].split(",", 1)[1].split('"', 1)[0]
    return json.loads(base64.b64decode(encoded))


def test_the_owner_reads_a_finished_benchmarks_report_as_one_page(
    client: TestClient, alice: Headers
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=FIB_ON_THREADS).headers["Location"]
    done = wait_until_finished(client, location, alice)
    assert done["status"] == "succeeded", done["error"]

    response = client.get(f"{location}/report", headers=alice)

    assert response.status_code == 200
    assert {name: response.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    page = response.text
    assert "fib n=15 tasks=4: which concurrency model, measured" in page
    assert "GIL off: the highest speedup measured is threads with 2 workers" in page
    assert "<script" not in page
    # How to reproduce it: the body that asks for it again, defaults spelled out.
    assert "&#34;name&#34;: &#34;fib&#34;" in page
    assert "nogil-bench measure --request body.json" in page
    # The data is the engine's own document: it reads back with the rounds the API reports.
    document = downloaded(page, "measurement.json")
    assert isinstance(document, dict)
    threads = next(row for row in from_json(document).rows if row.runner == "threads")
    entry = next(entry for entry in done["results"] if entry["runner"] == "threads")
    assert threads.wall_s == entry["runs_wall_s"]
    assert sys.executable in page  # the owner sees where it ran

    # Shared, the same report names no path on the measuring host, in the page or its data.
    link = client.post(f"{location}/share", headers=alice).json()["url"]
    shared = client.get(link).text
    host_paths = [sys.executable, sys.prefix, sysconfig.get_config_var("prefix")]
    assert "GIL off: the highest speedup measured is threads with 2 workers" in shared
    for path in host_paths:
        assert path not in shared
        assert path not in json.dumps(downloaded(shared, "measurement.json"))
        assert path not in json.dumps(downloaded(shared, "pyperf.json"))


def test_a_queued_benchmarks_page_says_it_waits_and_what_it_will_measure(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=FIB_ON_THREADS).headers["Location"]

    response = client.get(f"{location}/report", headers=alice)

    assert response.status_code == 200
    assert "Benchmark queued: waiting for a worker." in " ".join(response.text.split())
    assert "The answer" not in response.text
    assert "&#34;runners&#34;: [" in response.text
    assert client.delete(location, headers=alice).status_code == 200  # cancelled, not run


def test_another_users_report_is_not_found(
    client: TestClient, alice: Headers, bob: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=FIB_ON_THREADS).headers["Location"]

    assert client.get(f"{location}/report", headers=bob).status_code == 404
    assert client.get(f"{location}/report").status_code == 401
    assert client.delete(location, headers=alice).status_code == 200
