"""Markdown for people: per workload a table of speedups with their CIs and verdicts, then the
GIL, runner and interpreter comparisons; noisy figures flagged, never hidden."""

from collections.abc import Sequence
from itertools import groupby

from nogil_bench.bench.calibration import (
    INSIDE_CI_TARGET,
    VERDICT_KINDS,
    VERDICTS_AGREE_TARGET,
    calibrate,
    matched,
)
from nogil_bench.bench.results import (
    Finding,
    Kind,
    Measurement,
    Row,
    differing_rows,
    mismatched_outputs,
)
from nogil_bench.bench.stats import NOISY_STDEV_RATIO, Comparison

MIB = 1024 * 1024
HEADER = (
    "| python | GIL | runner | workers | wall median s | ± stdev | speedup [95% CI] "
    "| vs sequential | % of ceiling [95% CI] | steal | setup s | CPU s | peak RSS MiB |"
)


def _separator(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def ratio_cell(comparison: Comparison | None) -> str:
    """'1.62x [1.55, 1.70]'."""
    if comparison is None:
        return ""
    if comparison.ci_low is None or comparison.ci_high is None:
        return f"{comparison.ratio:.2f}x (no CI)"
    return f"{comparison.ratio:.2f}x [{comparison.ci_low:.2f}, {comparison.ci_high:.2f}]"


def share_cell(comparison: Comparison | None) -> str:
    """'98% [95%, 101%]': a row's speedup as a share of the ceiling's, paired by round."""
    if comparison is None:
        return ""
    if comparison.ci_low is None or comparison.ci_high is None:
        return f"{comparison.ratio:.0%} (no CI)"
    return f"{comparison.ratio:.0%} [{comparison.ci_low:.0%}, {comparison.ci_high:.0%}]"


def markdown(measurement: Measurement) -> str:
    descriptions = measurement.environment.get("workloads", {})
    assert isinstance(descriptions, dict)
    lines = [summary(measurement), ""]
    lines += gil_enabled_by_imports(measurement)
    for workload, group in groupby(measurement.rows, key=lambda row: row.workload):
        lines += [f"### {workload}: {descriptions.get(workload, '')}", "", HEADER]
        lines.append(_separator(HEADER))
        lines += [table_row(row) for row in group]
        lines.append("")
    lines += not_measured(measurement)
    lines += outputs_that_differ(measurement)
    lines += celery_workers(measurement)
    lines += comparison_tables(measurement)
    noisy = sum(row.noisy for row in measurement.rows)
    if noisy:
        lines.append(
            f"⚠ {noisy} configuration(s) had a standard deviation above "
            f"{NOISY_STDEV_RATIO:.0%} of the median: treat their figures as rough."
        )
    return "\n".join(lines)


def gil_cell(row: Row) -> str:
    """The GIL mode asked for, and what it was where an import turned the GIL back on."""
    return str(row.gil) if row.gil_enabled_by is None else f"{row.gil}, but on ⚠"


def gil_enabled_by_imports(measurement: Measurement) -> list[str]:
    """Per interpreter, the GIL=0 rows that ran with the GIL on, and the imports to blame."""
    lines = []
    for row in measurement.rows:
        if (modules := row.gil_enabled_by) is None:
            continue
        blamed = (
            f"module {', '.join(map(repr, modules))} re-enabled it"
            if modules
            else "it was on (no import said why)"
        )
        lines.append(
            f"⚠ {row.workload} on {row.python}: GIL=0 was requested but {blamed}, so its "
            "GIL=0 rows ran with the GIL on: they are not GIL-off figures. An extension "
            "declares that it is safe without the GIL with Py_mod_gil (its free-threaded "
            "wheel does); until that module does, it runs your code with the GIL on."
        )
    return [*dict.fromkeys(lines), ""] if lines else []


def not_measured(measurement: Measurement) -> list[str]:
    """The runners left out because they cannot run the work, each with why."""
    if not measurement.unsupported:
        return []
    return [
        "Not measured: these runners cannot run the work.",
        "",
        *(
            f"- {found.workload}, {found.runner} ({found.python}): {found.reason}"
            for found in measurement.unsupported
        ),
        "",
    ]


def outputs_that_differ(measurement: Measurement) -> list[str]:
    """Configurations whose results differ from the baseline's: the function is
    non-deterministic, or not thread-safe."""
    lines = []
    for workload in mismatched_outputs(measurement.rows):
        titles = ", ".join(row.title for row in differing_rows(measurement.rows, workload))
        lines += [
            f"⚠ {workload}: results differ between configurations (non-deterministic, or not "
            f"thread-safe): {titles} differ from the first configuration's.",
            "",
        ]
    return lines


def celery_workers(measurement: Measurement) -> list[str]:
    """Where the celery runners' tasks ran; their RSS is on those machines, not in the table."""
    lines = []
    for row in measurement.rows:
        celery = row.environment.get("celery")
        if not isinstance(celery, dict):
            continue
        hosts = ", ".join(
            f"{worker['hostname']} x{worker['concurrency']}" for worker in celery["workers"]
        )
        lines.append(
            f"- {row.workload}, {row.runner} w={row.workers}: Celery {celery['pool']} pool, "
            f"{celery['concurrency']} at once, on {hosts} (queue {celery['queue']})"
        )
    if not lines:
        return []
    return [
        "Celery task workers (their peak RSS is theirs, not in the table's, which counts "
        "the caller's side):",
        "",
        *dict.fromkeys(lines),
        "",
    ]


def summary(measurement: Measurement) -> str:
    return (
        f"{measurement.rounds} rounds (minimum {measurement.min_rounds}, bound "
        f"{measurement.max_rounds}) in {measurement.duration_s:.0f} s; "
        f"{measurement.stop_text}. Host CPU steal during the rounds: "
        f"{_pct(measurement.steal_share)}. Speedups are medians of per-round ratios, with exact "
        "95% CIs for the median (binomial order statistics)."
    )


def table_row(row: Row) -> str:
    stats = row.summary
    flag = " ⚠ noisy" if stats.noisy else ""
    verdict = "" if row.speedup is None else row.speedup.text
    cpu_s = row.median_of(lambda run: run.cpu_user_s + run.cpu_system_s)
    return (
        f"| {row.python} | {gil_cell(row)} | {row.runner} | {row.workers} | {stats.median:.4f} "
        f"| {stats.stdev_ratio:.1%}{flag} | {ratio_cell(row.speedup)} | {verdict} "
        f"| {share_cell(row.ceiling_share)} | {_pct(row.steal_share_median)} "
        f"| {row.setup_s:.3f} | {cpu_s:.3f} | {row.peak_rss_bytes / MIB:.0f} |"
    )


def comparison_tables(measurement: Measurement) -> list[str]:
    by_title = {row.title: row for row in measurement.rows}
    lines: list[str] = []
    sections = [
        (Kind.GIL, "GIL=0 vs GIL=1 (the same configuration)", "GIL=0 against GIL=1"),
        (Kind.RUNNER, "Each runner vs threads at the same worker count", "against threads"),
        (Kind.PYTHON, "Interpreters (each against the first named)", "against the first"),
    ]
    for kind, heading, column in sections:
        findings = measurement.of_kind(kind)
        if not findings:
            continue
        header = f"| workload | python | GIL | runner | workers | baseline | {column} |"
        lines += [f"### {heading}", "", header, _separator(header)]
        for finding in findings:
            row = by_title[finding.comparison.candidate]
            baseline = by_title[finding.comparison.baseline]
            lines.append(
                f"| {row.workload} | {row.python} | {row.gil} | {row.runner} | {row.workers} "
                f"| {baseline.runner} GIL={baseline.gil} {baseline.python} "
                f"| {finding.comparison.text} |"
            )
        lines.append("")
    return lines


def compare(first: Measurement, second: Measurement) -> str:
    """The calibration of two back-to-back measurements: does B land inside A's CIs, do their
    verdicts agree, and how wide are the CIs."""
    pairs = matched(first.findings, second.findings)
    header = "| configuration | A speedup [95% CI] | B speedup | inside A's CI | A says | B says |"
    lines = [header, _separator(header)]
    for a, b in pairs:
        if a.kind is not Kind.SPEEDUP:
            continue
        inside = "yes" if a.comparison.contains(b.comparison.ratio) else "**no**"
        lines.append(
            f"| {a.comparison.candidate} | {ratio_cell(a.comparison)} "
            f"| {b.comparison.ratio:.2f}x | {inside} | {a.comparison.verdict} "
            f"| {b.comparison.verdict} |"
        )
    disagreements = _disagreements(pairs)
    if disagreements:
        lines += ["", "Verdicts that differ:", *disagreements]
    result = calibrate(first.findings, second.findings)
    lines += [
        "",
        f"B's speedup inside A's 95% CI: {result.inside_ci} of {result.speedups} configurations "
        f"({result.inside_share:.0%}; target >= {INSIDE_CI_TARGET:.0%}: "
        f"{_met(result.inside_share >= INSIDE_CI_TARGET)})",
        f"Verdicts that agree (vs sequential, GIL=0 vs GIL=1): {result.verdicts_agree} of "
        f"{result.verdicts} ({result.agree_share:.0%}; target >= {VERDICTS_AGREE_TARGET:.0%}: "
        f"{_met(result.agree_share >= VERDICTS_AGREE_TARGET)})",
        f"Median relative CI width of the speedups, (high - low) / median: "
        f"A {_pct(result.median_width_first)}, B {_pct(result.median_width_second)}",
        f"A: {first.rounds} rounds, {first.stop_text}; B: {second.rounds} rounds, "
        f"{second.stop_text}",
    ]
    return "\n".join(lines)


def _disagreements(pairs: Sequence[tuple[Finding, Finding]]) -> list[str]:
    return [
        f"- {a.kind}: {a.comparison.candidate} vs {a.comparison.baseline}: "
        f"A {a.comparison.text}; B {b.comparison.text}"
        for a, b in pairs
        if a.kind in VERDICT_KINDS and a.comparison.verdict != b.comparison.verdict
    ]


def _met(met: bool) -> str:
    return "met" if met else "**not met**"
