"""Kinds of queued work: one interface (claim, run, fail, put back, hand out) that the embedded
executor and the Celery workers both drive, one registry, and no import cycles around it."""

import ast
import re
import uuid
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

import nogil_bench
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.models import Status
from nogil_bench.core.work import Context, Delivery, WorkKind
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.runs import TASKS_PER_WORKER_PER_CHUNK
from nogil_bench.jobs.work import SingleJobs
from nogil_bench.work.queue import UndeliverableError, run_delivery
from nogil_bench.work.registry import WORK_KINDS, UnknownWorkKindError, get_kind
from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    Headers,
    benchmark,
    synthetic_job,
    wait_until_finished,
)

PACKAGE = Path(nogil_bench.__file__).parent


def test_every_kind_has_a_table_of_its_own_listed_in_lock_order() -> None:
    assert list(WORK_KINDS) == ["job", "batch", "benchmark"]
    assert [kind.table for kind in WORK_KINDS.values()] == [Job, Batch, Benchmark]
    assert all(isinstance(kind, WorkKind) for kind in WORK_KINDS.values())


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(UnknownWorkKindError, match="'report'; known: job, batch, benchmark"):
        get_kind("report")


def imports_of(module: Path) -> set[str]:
    """The package's modules `module` imports, when it loads or inside a function: an import
    put off until a function runs is still an edge between folders, only one that the order
    modules happen to load in hides."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("nogil_bench.")}


def folder_of(module: str) -> str:
    """`nogil_bench.jobs.runs` is in `jobs`; `nogil_bench.main` is its own."""
    return module.split(".")[1]


def test_no_folder_of_the_package_imports_back_one_that_imports_it() -> None:
    """Folders (domains) import each other one way only: core below everything, the domains
    above it, the queue's drivers above them. An edge back makes an import cycle, which only
    the order modules happen to load in keeps from failing. Imports inside functions count
    too, with no exception needed: cli.py and main.py put some off to start light, and nothing
    imports them back."""
    why: dict[tuple[str, str], str] = {}
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for imported in imports_of(path):
            if (target := folder_of(imported)) != source:
                why.setdefault((source, target), f"{path.relative_to(PACKAGE)} imports {imported}")
    graph: dict[str, set[str]] = {}
    for source, target in why:
        graph.setdefault(source, set()).add(target)

    def path_between(start: str, goal: str) -> list[str] | None:
        stack, seen = [[start]], {start}
        while stack:
            path = stack.pop()
            for following in graph.get(path[-1], set()):
                if following == goal:
                    return [*path, goal]
                if following not in seen:
                    seen.add(following)
                    stack.append([*path, following])
        return None

    for source, target in why:
        back = path_between(target, source)
        if back is not None:
            cycle = [source, *back]
            pytest.fail("; ".join(why[edge] for edge in pairwise(cycle)))


def test_core_imports_no_domain_not_even_inside_a_function() -> None:
    """core is what every folder stands on, so it names none of them: a domain hands core what
    it needs (the tables alembic sees, the figures /metrics reads) instead."""
    reaching_up = sorted(
        f"{path.relative_to(PACKAGE)} imports {imported}"
        for path in (PACKAGE / "core").rglob("*.py")
        for imported in imports_of(path)
        if folder_of(imported) != "core"
    )
    assert reaching_up == []


def test_routes_need_only_the_queue_interface_not_the_executor() -> None:
    assert "nogil_bench.work.executor" not in imports_of(PACKAGE / "jobs/dependencies.py")


class RecordedJobs(SingleJobs):
    """Single jobs whose runs are noted: the drivers must go through the registry's kind."""

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    def run(self, context: Context, work_id: uuid.UUID) -> None:
        self.ran.append(work_id)
        super().run(context, work_id)


def test_the_executor_runs_work_through_its_kind_in_the_registry(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordedJobs()
    monkeypatch.setitem(WORK_KINDS, "job", recorded)
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    assert wait_until_finished(client, f"{JOBS}/{job['id']}", alice)["status"] == "succeeded"
    assert recorded.ran == [uuid.UUID(job["id"])]


class FailingJobs(SingleJobs):
    def run(self, context: Context, work_id: uuid.UUID) -> None:
        raise RuntimeError("the pool fell over")


def test_a_run_that_raises_is_failed_through_its_kind_with_the_error(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(WORK_KINDS, "job", FailingJobs())
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    failed = wait_until_finished(client, f"{JOBS}/{job['id']}", alice)
    assert (failed["status"], failed["error"]) == ("failed", "RuntimeError: the pool fell over")


def queued_rows(engine: Engine) -> tuple[list[Job], list[Job], list[Benchmark]]:
    with Session(engine) as session:
        jobs = list(session.exec(select(Job).order_by(col(Job.id))).all())
        benchmarks = list(session.exec(select(Benchmark)).all())
    singles = [job for job in jobs if job.batch_id is None]
    return singles, [job for job in jobs if job.batch_id is not None], benchmarks


def test_each_kind_hands_out_its_own_deliveries_a_batch_in_chunks_per_worker(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    workers = 2
    chunk = workers * TASKS_PER_WORKER_PER_CHUNK
    body = {
        "source": {"count": chunk + 3, "width": 8, "height": 8},
        "pipeline": [{"op": "invert"}],
        "workers": workers,
    }
    batch = client.post(BATCHES, headers=alice, json=body).json()
    client.post(JOBS, headers=alice, json=synthetic_job())
    client.post(BENCHMARKS, headers=alice, json=benchmark())
    singles, members, benchmarks = queued_rows(client.app.state.engine)  # type: ignore[attr-defined]

    assert get_kind("job").deliveries(singles) == [Delivery("job", singles[0].id)]
    assert get_kind("benchmark").deliveries(benchmarks) == [Delivery("benchmark", benchmarks[0].id)]
    chunks = get_kind("batch").deliveries(members)
    ids = tuple(job.id for job in members)
    assert chunks == [
        Delivery("batch", uuid.UUID(batch["id"]), ids[:chunk]),
        Delivery("batch", uuid.UUID(batch["id"]), ids[chunk:]),
    ]
    assert [delivery.fifo_key for delivery in chunks] == [ids[0], ids[chunk]]


def synthetic_batch(count: int) -> dict[str, object]:
    return {"source": {"count": count, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}


def worker_context(engine: Engine, client: TestClient) -> Context:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    return Context(engine, settings, uuid.uuid7(), "worker-1", lambda: False)


def test_a_delivery_no_dispatcher_sends_is_refused_by_what_is_wrong_with_it(
    client: TestClient, paused: Callable[[], None]
) -> None:
    context = worker_context(client.app.state.engine, client)  # type: ignore[attr-defined]
    some_id = uuid.uuid7()
    for delivery, reason in [
        (Delivery("report", some_id), "no kind of work named 'report'"),
        (Delivery("batch", some_id), f"batch {some_id}: this kind is handed out in parts"),
        (Delivery("job", some_id, (some_id,)), f"job {some_id}: this kind is handed out whole"),
    ]:
        with pytest.raises(UndeliverableError, match=re.escape(reason)):
            run_delivery(context, delivery)


def test_a_delivery_runs_what_is_still_queued_and_a_second_copy_runs_nothing(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    batch = client.post(BATCHES, headers=alice, json=synthetic_batch(3)).json()
    _, members, _ = queued_rows(engine)
    context = worker_context(engine, client)

    single = Delivery("job", uuid.UUID(job["id"]))
    part = Delivery("batch", uuid.UUID(batch["id"]), tuple(job.id for job in members))
    assert (run_delivery(context, single), run_delivery(context, part)) == (1, 3)
    assert (run_delivery(context, single), run_delivery(context, part)) == (0, 0)

    with Session(engine) as session:
        rows = session.exec(select(Job)).all()
        finished = session.get(Batch, uuid.UUID(batch["id"]))
    assert {(row.status, row.attempts, row.worker) for row in rows} == {
        (Status.SUCCEEDED, 1, "worker-1")
    }
    assert finished is not None
    assert finished.status == Status.SUCCEEDED
