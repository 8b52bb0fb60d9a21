"""A batch's page (`GET /api/v1/batches/{id}/report`): what it ran, its throughput and latency
percentiles, each job's time as a chart, its failures with their reasons, and how to submit it
again; while it is queued or running, how many of its jobs are done. Drawn from plain values
that the jobs' side fills from the batch's public view, so reports know nothing of its tables."""

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nogil_bench.bench.report import MIB
from nogil_bench.core.models import Status
from nogil_bench.reports.job_times import Guide, JobTime, job_times_svg
from nogil_bench.reports.render import data_url, render

NOT_YET = "—"
BATCHES_ROUTE = "localhost:8000/api/v1/batches"  # as the README's examples reach the service


@dataclass(frozen=True, slots=True)
class JobFacts:
    """One job of the batch, as its public view describes it."""

    status: Status
    width: int
    height: int
    seed: int | None
    upload_filename: str | None
    latency_s: float | None
    cpu_s: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    """A process that ran some of the batch's jobs."""

    worker: str
    jobs: int
    wall_s: float


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """A batch as its public view (GET /api/v1/batches/{id}) describes it: its progress and
    aggregates as computed there, and its jobs in the order submitted."""

    id: str
    status: Status
    error: str | None
    runner: str
    workers: int
    pipeline: list[dict[str, Any]]
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    gil_enabled: bool | None
    done: int
    total: int
    counts: Mapping[Status, int]
    wall_s: float | None
    setup_s: float | None
    throughput_images_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    cpu_user_s: float | None
    cpu_system_s: float | None
    peak_rss_bytes: int | None
    ran_on: list[WorkerFacts]
    jobs: list[JobFacts]


@dataclass(frozen=True, slots=True)
class JobLine:
    number: int  # in the order submitted, as on the chart
    source: str
    status: str
    latency: str
    cpu: str
    error: str | None


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    subtitle: str
    status: str
    finished: bool
    done: int
    total: int
    percent: int
    answer: list[str]
    figures: list[tuple[str, str]]
    chart: str | None
    batch_error: str | None
    failures: list[JobLine]
    jobs: list[JobLine]
    pipeline: str
    resubmit: str
    uploads: bool  # the batch's images were uploaded: resubmitting reads them again


def batch_page(batch: BatchFacts) -> str:
    """The whole page, self-contained."""
    lines = job_lines(batch.jobs)
    page = Page(
        title=title(batch),
        subtitle=subtitle(batch),
        status=str(batch.status),
        finished=batch.status.finished,
        done=batch.done,
        total=batch.total,
        percent=100 * batch.done // batch.total if batch.total else 0,
        answer=answer(batch),
        figures=figures(batch),
        chart=chart(batch),
        batch_error=batch.error,
        failures=[line for line in lines if line.error is not None],
        jobs=lines,
        pipeline=json.dumps(batch.pipeline),
        resubmit=resubmit_command(batch),
        uploads=not synthetic(batch.jobs),
    )
    return render("batch.html", title=page.title, page=page)


def seconds_text(value_s: float | None) -> str:
    """A duration as people read it: milliseconds under a second, else seconds."""
    if value_s is None:
        return NOT_YET
    if value_s < 1:
        return f"{value_s * 1000:.3g} ms"
    return f"{value_s:.2f} s"


def title(batch: BatchFacts) -> str:
    operations = ", ".join(str(step.get("op", "?")) for step in batch.pipeline)
    return (
        f"Batch of {batch.total} images through {operations}: "
        f"{batch.runner}, {batch.workers} workers"
    )


def subtitle(batch: BatchFacts) -> str:
    times = (
        ("queued", batch.queued_at),
        ("started", batch.started_at),
        ("finished", batch.finished_at),
    )
    when = ", ".join(
        f"{label} {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        for label, moment in times
        if moment is not None
    )
    return f"Batch {batch.id}, {batch.status}; {when}"


def answer(batch: BatchFacts) -> list[str]:
    """The batch's outcome and its figures in two sentences."""
    counts = count_words(batch.counts)
    if not batch.status.finished:
        outcome = f"So far: {counts}."
    elif batch.wall_s is None:
        outcome = f"It never ran: {counts}."
    else:
        outcome = f"{counts.capitalize()}, in {seconds_text(batch.wall_s)} of wall time"
        if batch.throughput_images_per_s is not None:
            outcome += f": {batch.throughput_images_per_s:.2f} images/s"
        outcome += "."
    if batch.latency_p50_s is None or batch.latency_p95_s is None:
        return [outcome, "No job has a time yet."]
    timed = sum(job.latency_s is not None for job in batch.jobs)
    return [
        outcome,
        f"Half the jobs took at most {seconds_text(batch.latency_p50_s)} and 95% of them at "
        f"most {seconds_text(batch.latency_p95_s)} (p50 and p95 of the {timed} "
        f"job{'' if timed == 1 else 's'} that ran).",
    ]


def count_words(counts: Mapping[Status, int]) -> str:
    """`2 succeeded, 1 failed`: the statuses that some job has, in a fixed order."""
    found = [f"{counts[status]} {status}" for status in Status if counts.get(status)]
    return ", ".join(found) or "no jobs"


def figures(batch: BatchFacts) -> list[tuple[str, str]]:
    """The batch's figures, as label and value."""
    throughput = (
        "n/a: it has no wall time yet"
        if batch.throughput_images_per_s is None
        else f"{batch.throughput_images_per_s:.2f} images/s (succeeded images over wall time)"
    )
    cpu = (
        NOT_YET
        if batch.cpu_user_s is None or batch.cpu_system_s is None
        else f"{batch.cpu_user_s:.3f} s user, {batch.cpu_system_s:.3f} s system"
    )
    gil = {None: "not known yet", True: "on", False: "off"}[batch.gil_enabled]
    ran_on = "; ".join(
        f"{share.worker}: {share.jobs} jobs in {seconds_text(share.wall_s)}"
        for share in batch.ran_on
    )
    return [
        ("Throughput", throughput),
        ("Latency p50", seconds_text(batch.latency_p50_s)),
        ("Latency p95", seconds_text(batch.latency_p95_s)),
        ("Jobs", f"{batch.done} of {batch.total} done: {count_words(batch.counts)}"),
        ("Runner", f"{batch.runner}, {batch.workers} workers"),
        ("Wall time, pool start-up included", seconds_text(batch.wall_s)),
        ("Pool start-up", seconds_text(batch.setup_s)),
        ("CPU time", cpu),
        (
            "Peak RSS",
            NOT_YET if batch.peak_rss_bytes is None else f"{batch.peak_rss_bytes / MIB:.0f} MiB",
        ),
        ("GIL in its workers", gil),
        ("Ran on", ran_on or NOT_YET),
    ]


def job_lines(jobs: Sequence[JobFacts]) -> list[JobLine]:
    return [
        JobLine(
            number=number,
            source=(
                job.upload_filename
                if job.upload_filename is not None
                else f"synthetic {job.width}x{job.height}, seed {job.seed}"
            ),
            status=str(job.status),
            latency=seconds_text(job.latency_s),
            cpu=seconds_text(job.cpu_s),
            error=job.error,
        )
        for number, job in enumerate(jobs, start=1)
    ]


def chart(batch: BatchFacts) -> str | None:
    guides = [
        Guide(label, value_s)
        for label, value_s in (("p50", batch.latency_p50_s), ("p95", batch.latency_p95_s))
        if value_s is not None
    ]
    svg = job_times_svg(
        [JobTime(job.latency_s, failed=job.status is Status.FAILED) for job in batch.jobs], guides
    )
    return None if svg is None else data_url(svg, "image/svg+xml")


def synthetic(jobs: Sequence[JobFacts]) -> bool:
    """A synthetic set's images (each with its seed), not uploads."""
    return bool(jobs) and all(job.seed is not None for job in jobs)


def resubmit_command(batch: BatchFacts) -> str:
    """A shell command that submits the same batch again: the same synthetic set as JSON, or
    the same files (run where they are) as multipart."""
    command = [f"curl -s {BATCHES_ROUTE}", '-H "Authorization: Bearer $TOKEN"']
    if synthetic(batch.jobs):
        seeds = [job.seed for job in batch.jobs if job.seed is not None]
        body = {
            "source": {
                "count": len(batch.jobs),
                "width": batch.jobs[0].width,
                "height": batch.jobs[0].height,
                "seed": min(seeds),
            },
            "pipeline": batch.pipeline,
            "runner": batch.runner,
            "workers": batch.workers,
        }
        command += ["-H 'Content-Type: application/json'", f"-d {shlex.quote(json.dumps(body))}"]
    else:
        command += [
            f"-F {shlex.quote(f'images=@{job.upload_filename}')}"
            for job in batch.jobs
            if job.upload_filename is not None
        ]
        command += [
            f"-F {shlex.quote(f'pipeline={json.dumps(batch.pipeline)}')}",
            f"-F runner={shlex.quote(batch.runner)}",
            f"-F workers={batch.workers}",
        ]
    return " \\\n  ".join(command)
