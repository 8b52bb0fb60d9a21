"""Markdown for people: one table per workload, noisy figures flagged, never hidden."""

from collections.abc import Sequence
from itertools import groupby

from nogil_bench.bench.harness import Row
from nogil_bench.bench.stats import NOISY_STDEV_RATIO

MIB = 1024 * 1024
HEADER = (
    "| python | GIL | runner | workers | wall median s | ± stdev | speedup | efficiency "
    "| serial fraction | setup s | end-to-end s | CPU s | task p50 ms | peak RSS MiB |"
)

SEPARATOR = "|" + "---|" * (HEADER.count("|") - 1)


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


def compare(first: Sequence[dict[str, object]], second: Sequence[dict[str, object]]) -> str:
    """Speedups of two result documents side by side, with the relative difference."""

    def key(row: dict[str, object]) -> tuple[object, ...]:
        return (row["workload"], row["python"], row["gil"], row["runner"], row["workers"])

    later = {key(row): row for row in second}
    lines = [
        "| workload | python | GIL | runner | workers | speedup A | speedup B | difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    differences: list[float] = []
    for row in first:
        other = later.get(key(row))
        a, b = row.get("speedup"), other.get("speedup") if other else None
        if not isinstance(a, float) or not isinstance(b, float) or row["runner"] == "sequential":
            continue
        difference = (b - a) / a
        differences.append(abs(difference))
        workload, python, gil, runner, workers = key(row)
        lines.append(
            f"| {workload} | {python} | {gil} | {runner} | {workers} "
            f"| {a:.2f}x | {b:.2f}x | {difference:+.1%} |"
        )
    if differences:
        lines += ["", f"largest difference: {max(differences):.1%} over {len(differences)} pairs"]
    return "\n".join(lines)
