"""`nogil-bench measure` on a user's own code (docs/your-code.md): a function from any file or
module with its tasks, and what the report says when a runner cannot run it, a task raises,
results differ or an import turns the GIL back on; the example plugin (examples/); and, without
processes, the pieces underneath: references, parameters, digests, the runners' reasons."""

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from nogil_bench_examples.tasks import (
    NumberRange,
    TallyJob,
    longest_collatz,
    tally_total,
    tally_words,
)
from nogil_bench_examples.workloads import HashParams

from nogil_bench.bench.target import TargetError, make_target, split_reference
from nogil_bench.runners import get_runner, local_runners
from nogil_bench.workloads.digest import digest_of
from nogil_bench.workloads.registry import (
    InvalidParamsError,
    UnknownWorkloadError,
    get_workload,
    parse_params,
)
from tests.utils.extensions import compile_legacy_extension
from tests.utils.measure_cli import ROUNDS, TINY, measure, measured_rows

SAME_RESULTS = "Every configuration of a workload produced the same results."
EXAMPLE_DEFAULTS = {
    "examples-pure": {"tasks": 16, "span": 2000},
    "examples-hash": {"tasks": 16, "mebibytes": 32},
    "examples-contended": {"tasks": 16, "updates": 30000},
}


def write_module(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(source))
    return path


def runners_of(report: str) -> set[str]:
    return {row["runner"] for row in measured_rows(report)}


# --- The command line, on functions of the user's --------------------------------------------


def test_a_function_in_a_file_outside_the_project_is_measured_on_every_local_runner(
    tmp_path: Path,
) -> None:
    # A sibling module too: the file's folder is on every worker's path, subinterpreters' too.
    write_module(tmp_path / "project" / "helpers.py", "def digits(n): return str(n * 7919)\n")
    work = write_module(
        tmp_path / "project" / "work.py",
        """\
        import helpers

        def checksum(index):
            return sum(map(int, helpers.digits(index)))
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = measure(f"{work}:checksum", "--count", "8", *TINY, cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert "not measured" not in result.stderr
    assert set(local_runners()) <= runners_of(result.stdout)
    assert f"### {work}:checksum: 8 calls with the task's index" in result.stdout
    assert SAME_RESULTS in result.stdout


def test_the_tasks_callable_feeds_the_function_one_task_per_call(tmp_path: Path) -> None:
    # A module target is found from the working directory; the tasks come from a file's
    # callable, and str methods fail on anything but the words it returns.
    write_module(
        tmp_path / "wordcount.py",
        "def count_vowels(word):\n    return sum(word.lower().count(v) for v in 'aeiou')\n",
    )
    words = write_module(
        tmp_path / "inputs" / "words.py",
        "def sample_words():\n    return ['Free', 'threaded', 'Python', 'three', 'fourteen']\n",
    )

    result = measure(
        "wordcount:count_vowels",
        "--tasks",
        f"{words}:sample_words",
        "--runners",
        "processes",
        *TINY,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert f"5 tasks from {words}:sample_words()" in result.stdout
    assert runners_of(result.stdout) >= {"sequential", "processes"}
    assert SAME_RESULTS in result.stdout


def test_a_lambda_is_measured_where_it_can_be_and_left_out_with_why_where_it_cannot(
    tmp_path: Path,
) -> None:
    work = write_module(tmp_path / "work.py", "square = lambda index: index * index\n")

    result = measure(f"{work}:square", "--count", "4", *TINY)

    assert result.returncode == 0, result.stderr
    for runner in ("processes", "interpreters"):
        assert re.search(
            rf"^not measured: {runner} \(.*\): the function is not picklable \(a lambda\)",
            result.stderr,
            re.MULTILINE,
        ), result.stderr
    measured = runners_of(result.stdout)
    assert {"sequential", "threads", "asyncio"} <= measured
    assert not measured & {"processes", "interpreters"}
    assert "Not measured: these runners cannot run the work." in result.stdout


def test_a_task_that_raises_fails_the_measurement_naming_the_runner_the_task_and_the_error(
    tmp_path: Path,
) -> None:
    work = write_module(
        tmp_path / "work.py",
        """\
        def parse(index):
            if index == 3:
                raise ValueError("no parser for record 3")
            return index
        """,
    )

    result = measure(f"{work}:parse", "--count", "5", "--runners", "threads", *TINY)

    assert result.returncode == 1
    assert not result.stderr.lstrip().startswith("Traceback")
    error = result.stderr[result.stderr.index("error: ") :]
    message, _, task_traceback = error.partition("The task's traceback:")
    assert re.search(
        r"\b(sequential|threads) runner: task 3 \(3\) failed: ValueError: no parser for record 3",
        message,
    ), error
    assert "Traceback (most recent call last)" not in message  # the engine's own: not shown
    assert f'File "{work}", line 3, in parse' in task_traceback


def test_results_that_differ_between_runners_fail_the_measurement(tmp_path: Path) -> None:
    # Stable within each configuration (the engine also refuses results that change between
    # runs of one), different between them: only the sequential runner calls on the main thread.
    work = write_module(
        tmp_path / "work.py",
        """\
        import threading

        def on_main_thread(index):
            return threading.current_thread() is threading.main_thread()
        """,
    )

    result = measure(f"{work}:on_main_thread", "--count", "4", "--runners", "threads", *TINY)

    assert result.returncode == 1, result.stderr
    differ = re.search(r"^⚠ .*: results differ between configurations.*$", result.stdout, re.M)
    assert differ is not None, result.stdout
    assert "threads w=2 GIL=0" in differ.group()
    assert SAME_RESULTS not in result.stdout


def test_an_extension_lacking_py_mod_gil_is_named_for_turning_the_gil_on_and_refusing_interpreters(
    tmp_path: Path,
) -> None:
    compile_legacy_extension(tmp_path, "legacy_ext")
    work = write_module(
        tmp_path / "uses_ext.py",
        "import legacy_ext\n\ndef answer(index):\n    return legacy_ext.answer() + index\n",
    )
    # PYTHON_GIL=0 here would force the GIL off; the engine keeps it from the workers.
    env = {**os.environ, "PYTHON_GIL": "0"}

    result = measure(
        f"{work}:answer",
        "--count",
        "4",
        "--runners",
        "threads",
        "interpreters",
        *ROUNDS,
        "--gil",
        "0",
        "1",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert "GIL=0 was requested but module 'legacy_ext' re-enabled it" in result.stdout
    gil_by_runner = {(row["runner"], row["GIL"]) for row in measured_rows(result.stdout)}
    for runner in ("sequential", "threads"):
        assert (runner, "0, but on ⚠") in gil_by_runner
        assert (runner, "1") in gil_by_runner
    assert re.search(
        r"^not measured: interpreters \(.*\): "
        r"module 'legacy_ext' does not support subinterpreters$",
        result.stderr,
        re.MULTILINE,
    ), result.stderr


# --- The example plugin ------------------------------------------------------------------------


def test_the_examples_are_listed_among_the_installed_workloads_with_their_parameters() -> None:
    result = measure("--list")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, defaults in EXAMPLE_DEFAULTS.items():
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{name}: ")]
        assert lines[index + 1].strip() == f"parameters: {json.dumps(defaults)}"


def test_an_example_runs_by_name_with_its_quick_parameters_under_the_given_ones() -> None:
    result = measure(
        "examples-hash", "--quick", "--param", "mebibytes=2", "--runners", "threads", *TINY
    )

    assert result.returncode == 0, result.stderr
    assert re.search(r"^### examples-hash: SHA-256 .* \(8 tasks\)$", result.stdout, re.M)
    assert runners_of(result.stdout) >= {"sequential", "threads"}
    assert SAME_RESULTS in result.stdout


def test_no_local_runner_refuses_an_example() -> None:
    # Subinterpreters import the task functions' module: it must import nothing they refuse.
    for name in EXAMPLE_DEFAULTS:
        work = get_workload(name).build(parse_params(name, {}, quick=True))
        for runner in local_runners():
            assert work.unsupported_reason(get_runner(runner)) is None, (name, runner)


def test_the_contended_example_loses_no_update_of_its_shared_tally() -> None:
    jobs = [TallyJob(seed, 2_000) for seed in range(8)]
    before = tally_total()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(tally_words, jobs))

    assert tally_total() - before == sum(job.updates for job in jobs)
    assert results == [tally_words(job) for job in jobs]  # what each task returns is its own


# --- References to a user's function, without running it -----------------------------------


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("work.py", "expected package.module:function or path/to/file.py:function"),
        ("work:", "expected package.module:function or path/to/file.py:function"),
        (":parse", "expected package.module:function or path/to/file.py:function"),
        ("{tmp}/notes.txt:parse", "{tmp}/notes.txt is not a .py file"),
        ("{tmp}/missing.py:parse", "no such file {tmp}/missing.py"),
        ("my-work.parse:parse", "'my-work.parse' is not a module name"),
    ],
)
def test_a_reference_that_names_no_function_is_refused_saying_why(
    tmp_path: Path, reference: str, problem: str
) -> None:
    (tmp_path / "notes.txt").write_text("not Python\n")
    reference = reference.format(tmp=tmp_path)

    with pytest.raises(TargetError) as refused:
        split_reference(reference)

    assert str(refused.value) == f"{reference!r}: {problem.format(tmp=tmp_path)}"


def test_a_reference_is_a_module_or_a_file_whose_folder_the_workers_import_from(
    tmp_path: Path,
) -> None:
    work = write_module(tmp_path / "work.py", "def parse(task): return task\n")

    assert split_reference("mypkg.parse:Parser.parse_one") == (
        "mypkg.parse",
        "Parser.parse_one",
        None,
    )
    assert split_reference(f"{work}:parse") == ("work", "parse", tmp_path.resolve())
    target = make_target(f"{work}:parse", tasks="inputs:sample", count=None, cwd=tmp_path / "cwd")
    assert target.path == (str(tmp_path.resolve()), str((tmp_path / "cwd").resolve()))


@pytest.mark.parametrize(("tasks", "count"), [("inputs:sample", 8), (None, None)])
def test_a_function_needs_exactly_one_of_tasks_and_count(
    tmp_path: Path, tasks: str | None, count: int | None
) -> None:
    with pytest.raises(TargetError, match=r"--tasks module:callable or --count N"):
        make_target("work:parse", tasks=tasks, count=count, cwd=tmp_path)


# --- Parameters of installed workloads ----------------------------------------------------------


def test_unknown_parameters_are_refused_listing_them_and_the_ones_taken() -> None:
    with pytest.raises(InvalidParamsError) as refused:
        parse_params("examples-pure", {"spam": 1, "eggs": 2, "tasks": 4})

    assert str(refused.value) == (
        "workload 'examples-pure' takes no parameter 'eggs', 'spam'; its parameters: span, tasks"
    )


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"span": 0}, "span: Input should be greater than or equal to 1"),
        ({"tasks": "many"}, "tasks: "),
    ],
)
def test_a_bad_parameter_value_is_refused_naming_the_parameter(
    raw: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidParamsError, match=re.escape(f"workload 'examples-pure': {named}")):
        parse_params("examples-pure", raw)


def test_given_parameters_go_over_the_quick_ones_which_go_over_the_defaults() -> None:
    assert parse_params("examples-hash", {}) == HashParams(tasks=16, mebibytes=32)
    assert parse_params("examples-hash", {"mebibytes": 2}, quick=True) == HashParams(8, 2)


def test_an_unknown_workload_is_refused_listing_the_installed_ones() -> None:
    with pytest.raises(
        UnknownWorkloadError, match=r"unknown workload 'exampels-hash'.*examples-hash"
    ):
        get_workload("exampels-hash")


# --- Digests of results ------------------------------------------------------------------------


DIGESTS_UNDER_A_HASH_SEED = """\
import json
from nogil_bench.workloads.digest import digest_of

words = {f"word{index}" for index in range(32)}
lengths = {word: len(word) for word in words}  # ordered as the set iterates
print(json.dumps({
    "order": list(words),
    "set": digest_of(words).hex(),
    "dict": digest_of(lengths).hex(),
}))
"""


def test_sets_and_dicts_digest_alike_in_processes_that_order_them_differently() -> None:
    seen = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", DIGESTS_UNDER_A_HASH_SEED],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for seed in ("1", "2")
    ]

    assert seen[0]["order"] != seen[1]["order"]  # the processes did iterate differently
    assert seen[0]["set"] == seen[1]["set"]
    assert seen[0]["dict"] == seen[1]["dict"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (1, True),
        (1, 1.0),
        (1, "1"),
        (b"ab", "ab"),
        (["ab", "c"], ["a", "bc"]),
        ([1, 2], (1, 2)),
        ({"a": 1}, {"a": "1"}),
        ({1, 2}, [1, 2]),
        (None, "None"),
    ],
)
def test_results_that_look_alike_but_differ_digest_differently(
    first: object, second: object
) -> None:
    assert digest_of(first) != digest_of(second)


def test_equal_results_digest_equal() -> None:
    assert digest_of({"b": 2, "a": [1, {3, 4}]}) == digest_of({"a": [1, {4, 3}], "b": 2})
    assert digest_of(NumberRange(1, 2)) == digest_of(NumberRange(1, 2))


# --- Why a runner cannot run the work -----------------------------------------------------------


def nested_function() -> Callable[[int], int]:
    def double(task: int) -> int:
        return 2 * task

    return double


@pytest.mark.parametrize(
    ("function", "tasks", "reason"),
    [
        (
            lambda task: task,
            [1],
            "the function is not picklable (a lambda); define it at a module's top level",
        ),
        (
            nested_function(),
            [1],
            "the function is not picklable (defined inside another function); "
            "define it at a module's top level",
        ),
        (
            longest_collatz,
            [NumberRange(1, 2), threading.Lock()],
            "task 1 is not picklable (TypeError: cannot pickle '_thread.lock' object)",
        ),
        (longest_collatz, [NumberRange(1, 2)], None),
    ],
    ids=["lambda", "nested-function", "unpicklable-task", "module-level-function"],
)
def test_the_processes_runner_says_what_it_cannot_send_to_its_workers(
    function: Callable[[Any], object], tasks: list[object], reason: str | None
) -> None:
    assert get_runner("processes").unsupported_reason(function, tasks) == reason


ASK_THE_INTERPRETERS_RUNNER = """\
import uses_ext
from nogil_bench.runners import get_runner

print(get_runner("interpreters").unsupported_reason(uses_ext.answer, [0]))
"""


def test_the_interpreters_runner_names_a_module_that_refuses_subinterpreters(
    tmp_path: Path,
) -> None:
    # In a process of its own: importing the extension here would turn this one's GIL on.
    compile_legacy_extension(tmp_path, "legacy_ext")
    write_module(tmp_path / "uses_ext.py", "import legacy_ext\n\ndef answer(i): return i\n")

    asked = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", ASK_THE_INTERPRETERS_RUNNER],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "module 'legacy_ext' does not support subinterpreters"
