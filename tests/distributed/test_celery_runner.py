"""The celery runners map tasks over real Celery task workers on a real Redis: the same
results as a local run, the workers' pool reported, and a clear refusal when the workers on
the queue are not what the run asks for."""

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import pytest
import redis
from celery.result import GroupResult
from fastapi.testclient import TestClient
from pydantic import SecretStr

from nogil_bench.bench.config import Config
from nogil_bench.bench.harness import measure_matrix
from nogil_bench.bench.plan import Matrix, this_interpreter
from nogil_bench.bench.report import markdown
from nogil_bench.bench.results import Design
from nogil_bench.benchmarks.schemas import BenchmarkCreate
from nogil_bench.benchmarks.service import check_request
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings, get_settings
from nogil_bench.core.errors import InvalidInputError
from nogil_bench.distributed import registry, sealed
from nogil_bench.distributed import runners as celery_runners
from nogil_bench.distributed.celery_app import MAP_TASK, TASK_QUEUES, make_celery
from nogil_bench.distributed.runners import CeleryRunner, CeleryWorkersError
from nogil_bench.distributed.sealed import (
    ExpiredSealError,
    ForgedPayloadError,
    Label,
    MisdirectedSealError,
    seal,
    unseal,
)
from nogil_bench.main import create_app
from nogil_bench.runners import TaskFailedError, get_runner
from nogil_bench.runners.sequential import SequentialRunner
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.images import ImageJob, SyntheticSource, output_digests, validate_steps
from nogil_bench.workloads.model import Step
from tests.utils.api import PURE_PIPELINE, expected_png, register_and_login, wait_until_finished
from tests.utils.live_server import NOGIL_BENCH
from tests.utils.rabbitmq_server import RabbitMQServer
from tests.utils.redis_server import RedisServer, WorkerProcess
from tests.utils.waiting import wait_until
from tests.utils.workers import REFUSE_SHELL_MODULES

SECRET = "celery-runner-tests-" + "s" * 32
STEPS = validate_steps([Step("box_blur", {"radius": 1}), Step("sepia")])
JOBS = [ImageJob(SyntheticSource(24, 16, seed), STEPS) for seed in range(6)]


# For the tests that run on each broker: `task_broker` is Redis unless parametrized with this.
ON_EACH_BROKER = pytest.mark.parametrize("task_broker", ["redis", "rabbitmq"], indirect=True)


@pytest.fixture(scope="module")
def task_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A broker (a Redis database of its own, or with ON_EACH_BROKER the RabbitMQ too, emptied)
    with a threads task worker and a prefork one, two slots each; this process set up to reach
    them (NOGIL_BENCH_BROKER_URL and the shared key)."""
    if getattr(request, "param", "redis") == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        url = redis_server.url.rsplit("/", 1)[0] + "/3"
    else:
        rabbitmq_server: RabbitMQServer = request.getfixturevalue("rabbitmq_server")
        rabbitmq_server.purge()
        url = rabbitmq_server.url
    workers = [
        WorkerProcess(
            tmp_path_factory.mktemp(f"tasks-{pool}"),
            ("task-worker", "--pool", pool, "--concurrency", "2"),
            BROKER_URL=url,
            SECRET_KEY=SECRET,
        )
        for pool in ("threads", "prefork")
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOGIL_BENCH_BROKER_URL", url)
        patch.setenv("NOGIL_BENCH_SECRET_KEY", SECRET)
        get_settings.cache_clear()
        try:
            for worker in workers:
                worker.start()
            yield url
        finally:
            for worker in workers:
                worker.stop()
            get_settings.cache_clear()


@ON_EACH_BROKER
@pytest.mark.parametrize("name", ["celery-threads", "celery-prefork"])
def test_a_celery_runner_gives_the_local_runs_outputs_and_reports_its_pool(
    task_broker: str, name: str
) -> None:
    with SequentialRunner() as sequential:
        expected = output_digests(sequential, JOBS)

    with get_runner(name)(2) as runner:
        outputs = output_digests(runner, JOBS)
    assert isinstance(runner, CeleryRunner)

    assert outputs == expected
    pool = name.removeprefix("celery-")
    assert runner.description["pool"] == pool
    assert runner.description["concurrency"] == 2
    assert runner.description["queue"] == f"nogil-bench.tasks.{pool}"
    [worker] = runner.description["workers"]
    assert worker["hostname"].startswith(f"tasks-{pool}@")
    assert worker["gil"] is runtime.is_gil_enabled()
    # The thread pool runs every task in its one process; prefork in its two children.
    processes = {pid for _, pid in runner.ran_on}
    assert len(processes) == (1 if pool == "threads" else 2)


def test_a_failing_task_names_its_index_and_error(task_broker: str) -> None:
    with get_runner("celery-threads")(2) as runner:
        with pytest.raises(TaskFailedError, match=r"task 2 \('x'\) failed: ValueError"):
            runner.map(int, ["1", "2", "x", "4"])

        assert runner.map(fib, [10, 11]) == [55, 89]  # the runner is still usable


@ON_EACH_BROKER
def test_asking_for_other_than_the_pools_slots_is_refused_naming_what_runs(
    task_broker: str,
) -> None:
    with pytest.raises(CeleryWorkersError) as refused, get_runner("celery-prefork")(1):
        pass

    message = str(refused.value)
    assert "asked for 1 prefork workers" in message
    assert "prefork x2" in message
    assert "nogil-bench task-worker --pool prefork --concurrency 1" in message


@ON_EACH_BROKER
def test_workers_in_another_gil_mode_are_refused(
    task_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = runtime.is_gil_enabled()
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: not theirs)

    with (
        pytest.raises(CeleryWorkersError, match=f"start them with PYTHON_GIL={int(not theirs)}"),
        get_runner("celery-threads")(2),
    ):
        pass


def test_a_queue_without_task_workers_is_refused_with_the_command_to_start_one(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOGIL_BENCH_BROKER_URL", redis_server.url.rsplit("/", 1)[0] + "/4")
    monkeypatch.setenv("NOGIL_BENCH_SECRET_KEY", SECRET)
    get_settings.cache_clear()
    try:
        with (
            pytest.raises(CeleryWorkersError, match="found no task worker on queue"),
            get_runner("celery-threads")(2),
        ):
            pass
    finally:
        get_settings.cache_clear()


def test_without_a_broker_the_runner_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # away from a developer's .env
    monkeypatch.delenv("NOGIL_BENCH_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        with (
            pytest.raises(CeleryWorkersError, match="set NOGIL_BENCH_BROKER_URL"),
            get_runner("celery-prefork")(2),
        ):
            pass
    finally:
        get_settings.cache_clear()


UNPICKLED: list[str] = []


def tripwire() -> str:
    UNPICKLED.append("unpickled")
    return "tripped"


class Tripwire:
    """Unpickling it calls tripwire(): it shows whether a payload was unpickled."""

    def __reduce__(self) -> tuple[Callable[[], str], tuple[()]]:
        return tripwire, ()


KEY = b"the service's key"
TASK = Label("task", "task-1", time.time() + 3600)


@pytest.fixture
def unpickled() -> list[str]:
    """What the Tripwires unpickled in this test."""
    UNPICKLED.clear()
    return UNPICKLED


def test_a_payload_sealed_with_another_key_is_refused_before_it_is_unpickled(
    unpickled: list[str],
) -> None:
    forged = seal(Tripwire(), b"someone else's key", TASK)

    with pytest.raises(ForgedPayloadError, match="share NOGIL_BENCH_SECRET_KEY"):
        unseal(forged, KEY, purpose="task", task_id="task-1")
    altered = seal(Tripwire(), KEY, TASK)[:-8] + "AAAAAAA="
    with pytest.raises(ForgedPayloadError):
        unseal(altered, KEY, purpose="task", task_id="task-1")
    assert unpickled == []  # neither was unpickled
    opened = unseal(seal(Tripwire(), KEY, TASK), KEY, purpose="task", task_id="task-1")
    assert opened == ("tripped", TASK)
    assert unpickled == ["unpickled"]


@pytest.mark.parametrize(
    ("label", "refusal", "message"),
    [
        (
            Label("reply", "task-1", TASK.expires_at),
            MisdirectedSealError,
            "a reply seal was offered as a task",
        ),
        (
            Label("task", "task-2", TASK.expires_at),
            MisdirectedSealError,
            "a task sealed for task task-2 was offered for task task-1",
        ),
        (
            Label("task", "task-1", time.time() - 5),
            ExpiredSealError,
            r"the task for task task-1 expired \d+\.\d s ago",
        ),
    ],
    ids=["other-purpose", "other-task", "expired"],
)
def test_a_genuine_seal_for_another_purpose_task_or_past_its_deadline_is_refused_unopened(
    label: Label, refusal: type[ForgedPayloadError], message: str, unpickled: list[str]
) -> None:
    with pytest.raises(refusal, match=message):
        unseal(seal(Tripwire(), KEY, label), KEY, purpose="task", task_id="task-1")

    assert unpickled == []


def test_a_reply_received_before_its_deadline_opens_after_it() -> None:
    # A map's replies are all in when its wait ends; opening them one by one takes time.
    label = Label("reply", "task-1", time.time() - 1)
    sealed_reply = seal(42, KEY, label)

    opened = unseal(
        sealed_reply, KEY, purpose="reply", task_id="task-1", received_at=label.expires_at - 0.5
    )

    assert opened.value == 42
    with pytest.raises(ExpiredSealError):
        unseal(sealed_reply, KEY, purpose="reply", task_id="task-1")


@pytest.fixture
def sent_and_replied(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """What the runner seals (its tasks) and the replies it receives, from here on."""
    sent: list[str] = []
    replied: list[str] = []
    real_seal, real_join = sealed.seal, GroupResult.join

    def recording_seal(*args: Any) -> str:
        sent.append(real_seal(*args))
        return sent[-1]

    def recording_join(self: GroupResult, *args: Any, **kwargs: Any) -> list[Any]:
        replies = real_join(self, *args, **kwargs)
        replied.extend(replies)
        return replies

    monkeypatch.setattr(sealed, "seal", recording_seal)
    monkeypatch.setattr(GroupResult, "join", recording_join)
    return sent, replied


def replay(monkeypatch: pytest.MonkeyPatch, replies: list[str]) -> None:
    """From here on, the runner receives `replies` instead of what its tasks answer, as if
    someone who can write to the broker put them there."""

    def replaying_join(self: GroupResult, *args: Any, **kwargs: Any) -> list[Any]:
        real_join(self, *args, **kwargs)
        return replies

    real_join = GroupResult.join
    monkeypatch.setattr(GroupResult, "join", replaying_join)


def test_a_reply_replayed_for_another_task_is_refused(
    task_broker: str,
    sent_and_replied: tuple[list[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, replied = sent_and_replied
    with get_runner("celery-threads")(2) as runner:
        assert runner.map(fib, [10]) == [55]
        replay(monkeypatch, replied)

        with pytest.raises(ForgedPayloadError, match=r"a reply sealed for task \S+ was offered"):
            runner.map(fib, [12])


def test_a_task_seal_offered_as_its_own_reply_is_refused(
    task_broker: str,
    sent_and_replied: tuple[list[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent, _ = sent_and_replied
    replay(monkeypatch, sent)  # each task's payload comes back as its reply

    with (
        get_runner("celery-threads")(2) as runner,
        pytest.raises(ForgedPayloadError, match="a task seal was offered as a reply"),
    ):
        runner.map(fib, [12])


def test_a_reply_received_after_its_runs_deadline_is_refused(
    task_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_join, timeout_s = GroupResult.join, get_settings().EXECUTION_TIMEOUT_SECONDS

    def join_then_outlive_the_deadline(self: GroupResult, *args: Any, **kwargs: Any) -> Any:
        replies = real_join(self, *args, **kwargs)
        later = SimpleNamespace(time=lambda: time.time() + timeout_s + 1)
        monkeypatch.setattr(sealed, "time", later, raising=False)
        monkeypatch.setattr(celery_runners, "time", later, raising=False)
        return replies

    monkeypatch.setattr(GroupResult, "join", join_then_outlive_the_deadline)

    with (
        get_runner("celery-threads")(2) as runner,
        pytest.raises(ForgedPayloadError, match=r"the reply for task \S+ expired"),
    ):
        runner.map(fib, [12])


def test_a_task_replayed_under_another_task_id_is_refused_by_the_worker(
    task_broker: str, sent_and_replied: tuple[list[str], list[str]]
) -> None:
    sent, _ = sent_and_replied
    with get_runner("celery-threads")(2) as runner:
        assert runner.map(fib, [10]) == [55]
    app = make_celery(get_settings())
    try:
        replayed = app.send_task(
            MAP_TASK, args=(sent[0],), queue=TASK_QUEUES["threads"], task_id=str(uuid.uuid4())
        )
        outcome = replayed.get(timeout=30, propagate=False)
        replayed.forget()
    finally:
        app.close()

    assert isinstance(outcome, ForgedPayloadError)
    assert "a task sealed for task" in str(outcome)


def test_a_task_that_kills_its_prefork_process_fails_instead_of_returning_to_the_queue(
    task_broker: str,
) -> None:
    with get_runner("celery-prefork")(2) as runner:
        with pytest.raises(TaskFailedError, match=r"task 0 \(3\) failed: WorkerLostError"):
            runner.map(os._exit, [3])

        assert runner.map(fib, [10, 12]) == [55, 144]  # the pool replaced its child


def test_a_map_with_no_results_within_the_execution_timeout_is_refused_naming_it(
    task_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOGIL_BENCH_EXECUTION_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    try:
        with (
            get_runner("celery-threads")(2) as runner,
            pytest.raises(
                CeleryWorkersError, match=r"no results within 0\.5 s \(EXECUTION_TIMEOUT_SECONDS\)"
            ),
        ):
            runner.map(time.sleep, [1.5, 1.5])
    finally:
        get_settings.cache_clear()
    # The sleeping tasks run on (a thread pool cannot revoke them): the next test's map waits
    # for none of them.
    app = make_celery(get_settings())
    try:
        wait_until(
            lambda: not any((app.control.inspect(timeout=1).active() or {}).values()),
            "the task workers to finish the timed-out tasks",
        )
    finally:
        app.close()


@pytest.mark.parametrize("option", ["-c8", "-Q", "--autoscale=4,1", "--hostname=other"])
def test_a_task_worker_refuses_celery_options_that_would_differ_from_what_it_announces(
    tmp_path: Path, option: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "NOGIL_BENCH_BROKER_URL": "redis://127.0.0.1:1/0"}

    finished = subprocess.run(
        [NOGIL_BENCH, "task-worker", "--loglevel", "DEBUG", option],
        check=False,
        cwd=tmp_path,
        env=env | {"NOGIL_BENCH_SECRET_KEY": SECRET},
        capture_output=True,
        text=True,
    )

    assert finished.returncode == 1
    assert f"nogil-bench task-worker: {option}: set by task-worker itself" in finished.stderr


def test_a_task_worker_without_its_broker_exits_naming_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NOGIL_BENCH_BROKER_URL": "redis://:hidden@127.0.0.1:1/0"}

    finished = subprocess.run(
        [NOGIL_BENCH, "task-worker"],
        check=False,
        cwd=tmp_path,
        env=env | {"NOGIL_BENCH_SECRET_KEY": SECRET},
        capture_output=True,
        text=True,
    )

    assert finished.returncode == 1
    assert "the broker at redis://:**@127.0.0.1:1/0 does not answer" in finished.stderr
    assert "hidden" not in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_task_worker_refuses_to_start_without_the_shared_secret_key(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "NOGIL_BENCH_BROKER_URL": "redis://127.0.0.1:1/0"}

    finished = subprocess.run(
        [NOGIL_BENCH, "task-worker"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )

    assert finished.returncode == 1
    assert "set it, to the same value, for the service and every task worker" in finished.stderr


def test_the_engine_measures_celery_pools_beside_local_threads_and_says_where_they_ran(
    task_broker: str,
) -> None:
    template = Config("fib", "sequential", 1, warmups=0, params={"n": 14, "tasks": 4})
    gil = int(runtime.is_gil_enabled())
    runners = ["threads", "celery-threads", "celery-prefork"]
    matrix = Matrix([this_interpreter()], [gil], [template], runners, [2], ceiling=False)
    plan = matrix.plan()

    measurement = measure_matrix(
        plan, Design(min_blocks=1, max_blocks=1, block_rounds=2), progress=lambda line: None
    )

    rows = {row.runner: row for row in measurement.rows}
    assert set(rows) == {"sequential", *runners}
    assert len({row.output_digest for row in measurement.rows}) == 1
    assert rows["celery-prefork"].environment["celery"] == {
        "queue": "nogil-bench.tasks.prefork",
        "pool": "prefork",
        "concurrency": 2,
        "workers": [
            {"hostname": ANY, "concurrency": 2, "gil": runtime.is_gil_enabled()},
        ],
    }
    assert "celery" not in rows["threads"].environment
    report = markdown(measurement)
    assert "celery-threads w=2: Celery threads pool, 2 at once, on tasks-threads@" in report
    assert "celery-prefork w=2: Celery prefork pool, 2 at once, on tasks-prefork@" in report


@pytest.mark.parametrize(
    ("database_kind", "task_broker"),
    [
        ("sqlite", "redis"),
        ("postgresql", "redis"),
        ("mariadb", "redis"),
        ("postgresql", "rabbitmq"),
    ],
    indirect=["task_broker"],
)
def test_a_batch_on_a_celery_runner_runs_through_an_execution_worker_that_never_waits_for_itself(
    task_broker: str, settings: Settings, tmp_path: Path
) -> None:
    """The execution worker runs one execution at a time; the batch's runner maps its images
    over the task workers, on a queue that execution worker does not consume."""
    service = settings.model_copy(
        update={
            "BROKER_URL": task_broker,
            "SECRET_KEY": SecretStr(SECRET),
            "LEASE_SECONDS": 3.0,
            "EXECUTOR_POLL_SECONDS": 0.2,
        }
    )
    executions = WorkerProcess(
        tmp_path / "executions",
        DATA_DIR=str(service.DATA_DIR),
        DATABASE_URL=service.database_url,
        BROKER_URL=task_broker,
        SECRET_KEY=SECRET,
        WORKER_NAME="executions-1",
    )
    executions.start()
    try:
        with TestClient(create_app(service)) as api:
            alice = register_and_login(api, "alice@example.com")
            batches = {
                runner: api.post(
                    "/api/v1/batches",
                    headers=alice,
                    json={
                        "source": {"width": 40, "height": 24, "seed": 9, "count": 4},
                        "pipeline": PURE_PIPELINE,
                        "runner": runner,
                        "workers": 2,
                    },
                ).json()
                for runner in ("celery-threads", "celery-prefork")
            }
            for runner, batch in batches.items():
                finished = wait_until_finished(api, f"/api/v1/batches/{batch['id']}", alice)
                jobs = api.get(
                    "/api/v1/jobs", headers=alice, params={"batch_id": batch["id"]}
                ).json()["data"]
                assert finished["status"] == "succeeded", (runner, finished)
                for job in jobs:
                    assert (job["runner"], job["worker"]) == (runner, "executions-1")
                    output = api.get(f"/api/v1/jobs/{job['id']}/result", headers=alice).content
                    assert output == expected_png(40, 24, job["seed"], PURE_PIPELINE)

            # A runner that cannot start (1 slot asked, 2 offered) fails its chunk's jobs: the
            # worker's heartbeat would otherwise hold them running for ever.
            refused = api.post(
                "/api/v1/batches",
                headers=alice,
                json={
                    "source": {"width": 8, "height": 8, "count": 2},
                    "pipeline": PURE_PIPELINE,
                    "runner": "celery-threads",
                    "workers": 1,
                },
            ).json()
            failed = wait_until_finished(api, f"/api/v1/batches/{refused['id']}", alice)
            jobs = api.get(
                "/api/v1/jobs", headers=alice, params={"batch_id": refused["id"]}
            ).json()["data"]
            assert failed["status"] == "failed", failed
            assert [job["status"] for job in jobs] == ["failed", "failed"]
            assert all("was asked for 1 threads workers" in job["error"] for job in jobs), jobs
    finally:
        assert executions.stop() == 0, executions.output()


def test_a_benchmark_of_a_celery_runner_must_name_one_gil_mode(settings: Settings) -> None:
    with_broker = settings.model_copy(update={"BROKER_URL": "redis://127.0.0.1:9/0"})
    request = BenchmarkCreate.model_validate(
        {
            "source": {"count": 2, "width": 8, "height": 8},
            "pipeline": [{"op": "invert"}],
            "runners": ["threads", "celery-threads"],
            "gil": [0, 1],
        }
    )

    with pytest.raises(InvalidInputError, match=r"ask for one GIL mode, e\.g\. gil"):
        check_request(request, with_broker)


def test_a_benchmark_of_a_celery_runner_must_name_one_worker_count(settings: Settings) -> None:
    with_broker = settings.model_copy(update={"BROKER_URL": "redis://127.0.0.1:9/0"})
    request = BenchmarkCreate.model_validate(
        {
            "source": {"count": 2, "width": 8, "height": 8},
            "pipeline": [{"op": "invert"}],
            "runners": ["celery-prefork"],
            "gil": [0],
            "workers": [1, 2],
        }
    )

    with pytest.raises(InvalidInputError, match=r"ask for that one worker count"):
        check_request(request, with_broker)


def test_a_task_worker_starts_and_stops_warmly_without_celerys_shell_modules(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """As `nogil-bench worker`: the production image leaves click-repl, prompt_toolkit and
    wcwidth out."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(REFUSE_SHELL_MODULES)
    process = WorkerProcess(
        tmp_path / "tasks",
        ("task-worker", "--pool", "prefork", "--concurrency", "2"),
        BROKER_URL=redis_server.url.rsplit("/", 1)[0] + "/5",
        SECRET_KEY=SECRET,
    )
    process.env["PYTHONPATH"] = str(hook)
    process.start()
    broker = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/5")
    [announced] = registry.task_workers(broker, "nogil-bench.tasks.prefork")
    assert process.stop() == 0, process.output()

    assert (announced.pool, announced.concurrency) == ("prefork", 2)
    assert registry.task_workers(broker, "nogil-bench.tasks.prefork") == []  # withdrawn
    output = process.output()
    assert "concurrency: 2 (prefork)" in output
    assert "Warm shutdown" in output
    assert "not in the production image" not in output
