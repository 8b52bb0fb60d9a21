"""A time limit on one run of a runner: a hung task must not hold the queue forever."""

import threading
from collections.abc import Callable

from nogil_bench.runners.base import BaseRunner


class ExecutionTimeoutError(Exception):
    """The run went past its time limit; its pool was abandoned (processes are terminated)."""


def run_with_deadline[R](
    runner: BaseRunner, work: Callable[[BaseRunner], R], *, timeout_s: float
) -> R:
    """`work(runner)` on a thread of its own, waited for at most `timeout_s` seconds. Past that,
    the runner is abandoned (leaving its `with` block will not wait for the hung tasks) and
    ExecutionTimeoutError is raised; a hung thread is left behind, as threads cannot be killed."""
    outcome: list[R] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work(runner))
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)

    thread = threading.Thread(target=run, name=f"nogil-bench-{runner.name}-run", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        runner.abandon()
        raise ExecutionTimeoutError(
            f"the {runner.name} run took longer than the {timeout_s:g} s limit "
            "(EXECUTION_TIMEOUT_SECONDS) and was stopped"
        )
    if failure:
        raise failure[0]
    return outcome[0]
