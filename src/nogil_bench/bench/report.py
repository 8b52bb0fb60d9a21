"""Markdown for people: one table per workload, noisy figures flagged, never hidden."""

import statistics
from collections.abc import Sequence
from itertools import groupby

from nogil_bench.bench.harness import Row
from nogil_bench.bench.stats import NOISY_STDEV_RATIO

MIB = 1024 * 1024
HEADER = (
    "| python | GIL | runner | workers | wall median s | ± stdev | speedup | best-run speedup "
    "| efficiency "
    "| serial fraction | setup s | end-to-end s | CPU s | task p50 ms | peak RSS MiB |"
)

SEPARATOR = "|" + "---|" * (HEADER.count("|") - 1)
# Two runs of the same benchmark whose speedups differ by at most this much agree.
REPRODUCIBLE_RATIO = 0.05


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def markdown(rows: Sequence[Row], descriptions: dict[str, str]) -> str:
    lines: list[str] = []
    for workload, group in groupby(rows, key=lambda row: row.workload):
        lines += [f"### {workload}: {descriptions.get(workload, '')}", "", HEADER]
        lines.append(SEPARATOR)
        for row in group:
            spread = row.wall_s_stdev / row.wall_s_median if row.wall_s_median else 0.0
            flag = " ⚠ noisy" if row.noisy else ""
            lines.append(
                f"| {row.python} | {row.gil} | {row.runner} | {row.workers} "
                f"| {row.wall_s_median:.4f} | {spread:.1%}{flag} | {_fmt(row.speedup, '.2f')}x "
                f"| {_fmt(row.speedup_best, '.2f')}x "
                f"| {_fmt(row.efficiency, '.0%')} | {_fmt(row.karp_flatt, '.3f')} "
                f"| {row.setup_s:.3f} | {row.end_to_end_s:.3f} "
                f"| {row.cpu_user_s + row.cpu_system_s:.3f} | {row.task_s_p50 * 1000:.1f} "
                f"| {row.peak_rss_bytes / MIB:.0f} |"
            )
        lines.append("")
    noisy = sum(row.noisy for row in rows)
    if noisy:
        lines.append(
            f"⚠ {noisy} configuration(s) had a standard deviation above "
            f"{NOISY_STDEV_RATIO:.0%} of the median: treat those figures as rough."
        )
    return "\n".join(lines)


def compare(first: Sequence[Row], second: Sequence[Row]) -> str:
    """Speedups of two derived result sets side by side, with their relative differences: the
    median-based speedup (the headline figure) and the best-run one."""

    def key(row: Row) -> tuple[object, ...]:
        return (row.workload, row.python, row.gil, row.runner, row.workers)

    later = {key(row): row for row in second}
    lines = [
        "| workload | python | GIL | runner | workers | speedup A | speedup B | difference "
        "| best-run A | best-run B | difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    median_differences: list[float] = []
    best_differences: list[float] = []
    for row in first:
        other = later.get(key(row))
        if other is None or row.runner == "sequential":
            continue
        a, b, a_best, b_best = row.speedup, other.speedup, row.speedup_best, other.speedup_best
        if a is None or b is None or a_best is None or b_best is None:
            continue
        median_differences.append((b - a) / a)
        best_differences.append((b_best - a_best) / a_best)
        lines.append(
            f"| {row.workload} | {row.python} | {row.gil} | {row.runner} | {row.workers} "
            f"| {a:.2f}x | {b:.2f}x | {median_differences[-1]:+.1%} "
            f"| {a_best:.2f}x | {b_best:.2f}x | {best_differences[-1]:+.1%} |"
        )
    if median_differences:
        lines += [
            "",
            _agreement("median-based speedups", median_differences),
            _agreement("best-run speedups", best_differences),
        ]
    return "\n".join(lines)


def _agreement(label: str, differences: Sequence[float]) -> str:
    sizes = [abs(difference) for difference in differences]
    within = sum(size <= REPRODUCIBLE_RATIO for size in sizes)
    return (
        f"{label}: {within} of {len(sizes)} within {REPRODUCIBLE_RATIO:.0%}; "
        f"median difference {statistics.median(sizes):.1%}, largest {max(sizes):.1%}"
    )
