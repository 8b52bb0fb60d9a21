"""A batch's report as a page (`GET /api/v1/batches/{id}/report`): its public view and its jobs,
handed to the report renderer as plain values (reports/ never imports a domain)."""

from collections.abc import Sequence

from sqlmodel import Session

from nogil_bench.core.models import Status
from nogil_bench.jobs import service
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.schemas import BatchPublic
from nogil_bench.reports.batch import BatchFacts, JobFacts, WorkerFacts, batch_page


def batch_report(*, session: Session, batch: Batch) -> str:
    """The page: figures from the same view `GET /batches/{id}` returns, jobs in the order
    submitted."""
    described = service.describe_batch(session=session, batch=batch)
    newest_jobs, _ = service.list_jobs(
        session=session,
        owner_id=batch.owner_id,
        status=None,
        runner=None,
        batch_id=batch.id,
        limit=described.progress.total,
        offset=0,
    )
    return batch_page(batch_facts(described, newest_jobs[::-1]))


def batch_facts(described: BatchPublic, jobs: Sequence[Job]) -> BatchFacts:
    """The batch's public view and its jobs (in the order submitted), as the page takes them."""
    progress, aggregates = described.progress, described.aggregates
    return BatchFacts(
        id=str(described.id),
        status=described.status,
        error=described.error,
        runner=described.runner,
        workers=described.workers,
        pipeline=described.pipeline,
        queued_at=described.queued_at,
        started_at=described.started_at,
        finished_at=described.finished_at,
        gil_enabled=described.gil_enabled,
        done=progress.done,
        total=progress.total,
        counts={
            Status.QUEUED: progress.queued,
            Status.RUNNING: progress.running,
            Status.SUCCEEDED: progress.succeeded,
            Status.FAILED: progress.failed,
            Status.CANCELLED: progress.cancelled,
        },
        wall_s=aggregates.wall_s,
        setup_s=aggregates.setup_s,
        throughput_images_per_s=aggregates.throughput_images_per_s,
        latency_p50_s=aggregates.latency_p50_s,
        latency_p95_s=aggregates.latency_p95_s,
        cpu_user_s=aggregates.cpu_user_s,
        cpu_system_s=aggregates.cpu_system_s,
        peak_rss_bytes=aggregates.peak_rss_bytes,
        ran_on=[WorkerFacts(share.worker, share.jobs, share.wall_s) for share in described.ran_on],
        jobs=[
            JobFacts(
                status=job.status,
                width=job.width,
                height=job.height,
                seed=job.seed,
                upload_filename=job.upload_filename,
                latency_s=job.latency_s,
                cpu_s=job.cpu_s,
                error=job.error,
            )
            for job in jobs
        ],
    )
