import psutil

from nogil_bench.bench.measure import Usage, peak_rss_bytes, usage_between, usage_by_pid
from nogil_bench.runners import get_runner
from nogil_bench.workloads.fib import fib


def test_process_pool_work_is_counted_in_the_children_not_lost() -> None:
    me = psutil.Process()
    with get_runner("processes")(2) as runner:
        runner.map(fib, [1, 1])  # start the workers
        before = usage_by_pid(me)
        runner.map(fib, [25] * 6)
        after = usage_by_pid(me)
        children = {child.pid for child in me.children(recursive=True)}
        peak = peak_rss_bytes(me)

    used = usage_between(before, after)
    child_cpu_s = sum(
        (after[pid] - before.get(pid, Usage())).cpu_user_s for pid in children & after.keys()
    )
    assert len(children) >= 2
    assert child_cpu_s > 0
    assert used.cpu_user_s >= child_cpu_s
    assert peak > me.memory_info().rss  # the children's high-water marks are added


def test_a_worker_born_between_snapshots_counts_from_zero() -> None:
    before = {1: Usage(1.0, 0.5, 10, 2)}
    after = {1: Usage(1.5, 0.5, 12, 2), 2: Usage(0.25, 0.25, 3, 1)}

    assert usage_between(before, after) == Usage(0.75, 0.25, 5, 1)
