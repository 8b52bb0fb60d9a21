"""A batch's report page (issue 24): its throughput and latency percentiles as its JSON view
gives them, each job's time as a chart, its failures with their reasons; while it runs, how
many jobs are done. Only its owner reads it; the page runs no script, loads nothing, and shows
every user-given string as text."""

import base64
import json
import re
import shlex
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from html import unescape
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from nogil_bench.core.models import Status
from nogil_bench.jobs import runs as job_runs
from nogil_bench.jobs.models import Job
from nogil_bench.runners import BaseRunner
from nogil_bench.runners.timing import Outcome
from nogil_bench.work.queue import claim_next
from nogil_bench.workloads.images import ImageJob, SyntheticSource, run_jobs_captured
from tests.utils.api import BATCHES, PAGE_CSP, SMALL_BATCH, Headers, png, wait_until_finished
from tests.utils.html_page import Page

PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
SVG_PREFIX = "data:image/svg+xml;base64,"
SVG = "{http://www.w3.org/2000/svg}"
# SMALL_BATCH's three images (seeds 0, 1, 2), each reporting its own time; seed 1's fails.
LATENCY_BY_SEED_S = {0: 0.010, 1: 0.020, 2: 0.040}
CURSED_SEED = 1
CURSE = "ValueError: the image of seed 1 is cursed"
HOSTILE = "<script>alert(1)</script>\"quotes'</style>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;quotes&#39;&lt;/style&gt;"

type Verdict = Callable[[ImageJob], tuple[float, str | None]]


def figures(html: str) -> dict[str, str]:
    """The page's figures, by label."""
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html, flags=re.DOTALL)
    return {unescape(label): " ".join(unescape(value).split()) for label, value in pairs}


def chart(html: str) -> ElementTree.Element:
    """The per-job chart: the page's one data: image, an SVG."""
    [source] = [link for link in Page(html).links() if link.startswith(SVG_PREFIX)]
    svg = base64.b64decode(source.removeprefix(SVG_PREFIX))
    return ElementTree.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


def run_jobs_as(monkeypatch: pytest.MonkeyPatch, verdict: Verdict) -> None:
    """Jobs run for real, but each reports the latency `verdict` gives it and, when it also
    gives a reason, fails with it: fixed figures for the page to show."""
    real_run = run_jobs_captured

    def run(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[Outcome[bytes]]:
        outcomes = []
        for job, outcome in zip(jobs, real_run(runner, jobs), strict=True):
            latency_s, error = verdict(job)
            value = None if error is not None else outcome.value
            outcomes.append(replace(outcome, value=value, error=error, wall_s=latency_s))
        return outcomes

    monkeypatch.setattr(job_runs, "run_jobs_captured", run)


def by_seed(job: ImageJob) -> tuple[float, str | None]:
    assert isinstance(job.source, SyntheticSource)
    seed = job.source.seed
    return LATENCY_BY_SEED_S[seed], CURSE if seed == CURSED_SEED else None


def finished_batch(client: TestClient, headers: Headers, **submission: Any) -> dict[str, Any]:
    response = client.post(BATCHES, headers=headers, **submission)
    assert response.status_code == 202, response.text
    return wait_until_finished(client, response.headers["Location"], headers)


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def test_a_finished_batch_shows_its_figures_each_jobs_time_and_why_one_failed(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_jobs_as(monkeypatch, by_seed)
    batch = finished_batch(client, alice, json=SMALL_BATCH)

    response = client.get(f"{BATCHES}/{batch['id']}/report", headers=alice)

    assert response.status_code == 200
    assert {name: response.headers.get(name) for name in PAGE_HEADERS} == PAGE_HEADERS
    html = response.text
    shown = figures(html)
    # The figures are the batch's JSON view's: nearest-rank p50 and p95 of 10, 20 and 40 ms.
    aggregates = batch["aggregates"]
    assert (aggregates["latency_p50_s"], aggregates["latency_p95_s"]) == (0.020, 0.040)
    assert shown["Latency p50"] == "20 ms"
    assert shown["Latency p95"] == "40 ms"
    assert shown["Throughput"] == (
        f"{aggregates['throughput_images_per_s']:.2f} images/s (succeeded images over wall time)"
    )
    assert shown["Jobs"] == "3 of 3 done: 2 succeeded, 1 failed"
    words = Page(html).words()
    assert f"2 synthetic 8x8, seed 1 {CURSE}" in words  # the failures' table: job 2 and why
    assert "This batch is" not in words  # no progress banner once it is done


def test_the_chart_has_a_bar_per_job_as_tall_as_its_time_and_the_percentiles_as_lines(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_jobs_as(monkeypatch, by_seed)
    batch = finished_batch(client, alice, json=SMALL_BATCH)

    svg = chart(client.get(f"{BATCHES}/{batch['id']}/report", headers=alice).text)

    bars = [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class")]
    assert [bar.get("class") for bar in bars] == ["succeeded", "failed", "succeeded"]
    heights = [float(bar.get("height", "nan")) for bar in bars]
    assert heights[1] / heights[0] == pytest.approx(2, rel=0.01)
    assert heights[2] / heights[0] == pytest.approx(4, rel=0.01)
    guides = [line for line in svg.iter(f"{SVG}line") if line.get("class") == "guide"]
    assert [float(line.get("y1", "nan")) for line in guides] == [
        pytest.approx(float(bars[1].get("y", "nan"))),  # p50: the top of the 20 ms bar
        pytest.approx(float(bars[2].get("y", "nan"))),  # p95: the top of the 40 ms bar
    ]
    labels = [text.text for text in svg.iter(f"{SVG}text")]
    assert {"p50 20 ms", "p95 40 ms"} <= set(labels)


def test_the_page_is_self_contained(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_jobs_as(monkeypatch, by_seed)
    batch = finished_batch(client, alice, json=SMALL_BATCH)

    html = client.get(f"{BATCHES}/{batch['id']}/report", headers=alice).text

    assert "<script" not in html
    links = Page(html).links()
    assert links, "the chart is an image"
    assert all(link.startswith("data:") for link in links)


def test_a_batch_not_finished_says_how_many_of_its_jobs_are_done(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    batch = client.post(BATCHES, headers=alice, json=SMALL_BATCH).json()
    url = f"{BATCHES}/{batch['id']}/report"

    queued = client.get(url, headers=alice)
    state = client.app.state  # type: ignore[attr-defined]
    claim_next(state.engine, state.executor.boot_id, 30)  # running, as the executor marks it
    with Session(engine_of(client)) as session:
        first = uuid.UUID(batch["job_ids"][0])
        session.execute(
            update(Job)
            .where(col(Job.id) == first)
            .values(status=Status.SUCCEEDED, latency_s=0.015, cpu_s=0.014)
        )
        session.commit()
    running = client.get(url, headers=alice)

    assert queued.status_code == running.status_code == 200
    assert "This batch is queued: 0 of 3 jobs done." in Page(queued.text).words()
    assert "No job has run yet." in Page(queued.text).words()
    assert "This batch is running: 1 of 3 jobs done." in Page(running.text).words()
    assert figures(running.text)["Jobs"] == "1 of 3 done: 2 queued, 1 succeeded"
    bars = [rect for rect in chart(running.text).iter(f"{SVG}rect") if rect.get("class")]
    assert [bar.get("class") for bar in bars] == ["succeeded"]


def test_the_page_says_how_to_submit_the_same_batch_again(
    client: TestClient, alice: Headers
) -> None:
    batch = finished_batch(client, alice, json=SMALL_BATCH)
    html = client.get(f"{BATCHES}/{batch['id']}/report", headers=alice).text
    [command] = [
        block for block in re.findall(r"<pre>(.*?)</pre>", html, re.DOTALL) if "curl" in block
    ]

    arguments = shlex.split(unescape(command).replace("\\\n", " "))
    body = json.loads(arguments[arguments.index("-d") + 1])
    again = finished_batch(client, alice, json=body)

    assert again["status"] == "succeeded", again["error"]
    same = ("runner", "workers", "pipeline")
    assert {key: again[key] for key in same} == {key: batch[key] for key in same}
    assert body["source"] == {"count": 3, "width": 8, "height": 8, "seed": 0}  # SMALL_BATCH


def test_the_route_is_documented_as_a_page(client: TestClient) -> None:
    route = client.get("/openapi.json").json()["paths"][f"{BATCHES}/{{batch_id}}/report"]["get"]

    assert route["summary"]
    assert set(route["responses"]["200"]["content"]) == {"text/html"}
    assert "404" in route["responses"]


def test_only_the_owner_reads_the_page(client: TestClient, alice: Headers, bob: Headers) -> None:
    batch = client.post(BATCHES, headers=alice, json=SMALL_BATCH).json()
    url = f"{BATCHES}/{batch['id']}/report"

    assert client.get(url, headers=bob).status_code == 404
    assert client.get(f"{BATCHES}/{uuid.uuid4()}/report", headers=alice).status_code == 404
    assert client.get(url).status_code == 401
    wait_until_finished(client, f"{BATCHES}/{batch['id']}", alice)


def test_every_user_given_string_is_shown_escaped(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cursed = png(colour="red")
    run_jobs_as(
        monkeypatch,
        lambda job: (0.005, f"ValueError: {HOSTILE}" if job.source == cursed else None),
    )
    files = [
        ("images", (f"{HOSTILE}.png", png(colour="blue"), "image/png")),
        ("images", (f"{HOSTILE}2.png", cursed, "image/png")),
    ]
    batch = finished_batch(client, alice, files=files, data={"pipeline": '[{"op": "invert"}]'})
    filenames = [
        client.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["upload_filename"]
        for job_id in batch["job_ids"]
    ]
    # As stored (the test client sends a double quote in a file name as %22).
    assert all("<script>" in name and "</style>" in name for name in filenames), filenames

    html = client.get(f"{BATCHES}/{batch['id']}/report", headers=alice).text

    assert "<script" not in html
    assert html.count("</style>") == 1  # the page's own
    assert f"ValueError: {HOSTILE_ESCAPED}" in html
    words = Page(html).words()
    assert f"ValueError: {HOSTILE}" in words  # shown as text, as it was given
    assert all(name in words for name in filenames)
