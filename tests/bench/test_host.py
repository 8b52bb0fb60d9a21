"""Steal time from /proc/stat: the share of the host's CPU time the hypervisor took."""

from pathlib import Path

from nogil_bench.bench.host import CpuJiffies, parse_proc_stat, read_cpu_jiffies, steal_share

PROC_STAT = """\
cpu  791521 45122 91634 2368431 4181 0 4701 1872 0 0
cpu0 352173 21767 43290 1231941 1110 0 2185 926 0 0
cpu1 439348 23354 48343 1136489 3071 0 2515 946 0 0
intr 1 2 3
"""


def test_the_aggregate_cpu_line_gives_total_and_stolen_ticks() -> None:
    jiffies = parse_proc_stat(PROC_STAT)

    # guest and guest_nice are left out: the kernel already counts them in user and nice.
    assert jiffies == CpuJiffies(total=791521 + 45122 + 91634 + 2368431 + 4181 + 4701 + 1872,
                                 steal=1872)  # fmt: skip


def test_old_kernels_without_a_steal_column_steal_nothing() -> None:
    assert parse_proc_stat("cpu 10 0 5 85\n") == CpuJiffies(total=100, steal=0)


def test_steal_share_is_stolen_over_all_ticks_between_two_readings() -> None:
    before, after = CpuJiffies(total=1000, steal=10), CpuJiffies(total=1200, steal=60)

    assert steal_share(before, after) == 0.25


def test_no_reading_or_no_tick_gives_no_share() -> None:
    reading = CpuJiffies(total=1000, steal=10)

    assert steal_share(None, reading) is None
    assert steal_share(reading, None) is None
    assert steal_share(reading, reading) is None


def test_a_host_without_proc_stat_has_no_steal_figures(tmp_path: Path) -> None:
    assert read_cpu_jiffies(tmp_path / "missing") is None
    assert parse_proc_stat("intr 1 2 3\n") is None
