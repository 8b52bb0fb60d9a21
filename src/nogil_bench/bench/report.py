"""Markdown for people: per workload a table of speedups with their CIs and verdicts, then the
GIL, runner and interpreter comparisons; noisy figures flagged, never hidden."""

from collections.abc import Sequence

from nogil_bench.bench.calibration import (
    INSIDE_TARGET,
    OPPOSITE_TARGET,
    VERDICTS_AGREE_TARGET,
    WIDTH_TARGET,
    RepeatCheck,
    calibrate,
    matched,
)
from nogil_bench.bench.results import (
    Finding,
    Kind,
    Measurement,
    Row,
    differing_rows,
    grouped,
    mismatched_outputs,
)
from nogil_bench.bench.stats import NOISY_STDEV_RATIO, Comparison

MIB = 1024 * 1024
HEADER = (
    "| python | GIL | runner | workers | wall median s | ± stdev | speedup [95% interval] "
    "| vs sequential | % of ceiling [95% interval] | steal | setup s | CPU s | peak RSS MiB |"
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
        return f"{comparison.ratio:.2f}x (no interval)"
    return f"{comparison.ratio:.2f}x [{comparison.ci_low:.2f}, {comparison.ci_high:.2f}]"


def share_cell(comparison: Comparison | None) -> str:
    """'98% [95%, 101%]': a row's speedup as a share of the ceiling's, paired by round."""
    if comparison is None:
        return ""
    if comparison.ci_low is None or comparison.ci_high is None:
        return f"{comparison.ratio:.0%} (no interval)"
    return f"{comparison.ratio:.0%} [{comparison.ci_low:.0%}, {comparison.ci_high:.0%}]"


def markdown(measurement: Measurement) -> str:
    descriptions = measurement.environment.get("workloads", {})
    assert isinstance(descriptions, dict)
    lines = [summary(measurement), ""]
    lines += gil_enabled_by_imports(measurement)
    for workload, group in grouped(measurement.rows, key=lambda row: row.workload).items():
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
    design = measurement.design
    variance = measurement.variance
    return (
        f"{measurement.blocks} blocks of fresh worker processes, {design.block_rounds} rounds "
        f"in each (minimum {design.min_blocks} blocks, bound {design.max_blocks}), "
        f"{measurement.rounds} rounds in {measurement.duration_s:.0f} s; "
        f"{measurement.stop_text}. Host CPU steal during the rounds: "
        f"{_pct(measurement.steal_share)}. Ratios are geometric means of per-round ratios; each "
        "interval is where a rerun's ratio lands 95% of the time, from the variance inside a "
        "block of processes and between blocks (a verdict needs the whole interval on one side "
        f"of 1x). Standard deviation of a log ratio: {_pct(variance.within_sd)} from round to "
        f"round in one process (median over {variance.comparisons} comparisons), "
        f"{_pct(variance.between_sd)} between fresh processes as the intervals take it (pooled "
        f"with each comparison's estimate at least 0, {variance.between_df} degrees of "
        f"freedom; {_pct(variance.between_sd_unclipped)} unclipped)."
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
    """The calibration of two back-to-back measurements, per kind of comparison: does B land
    inside A's intervals, do their verdicts agree, does any flip, and how wide are they."""
    pairs = matched(first.findings, second.findings)
    header = (
        "| comparison | A ratio [95% rerun interval] | B ratio | inside A's | A says | B says |"
    )
    lines = [header, _separator(header)]
    for a, b in pairs:
        inside = "yes" if a.comparison.contains(b.comparison.ratio) else "**no**"
        lines.append(
            f"| {a.kind}: {a.comparison.candidate} vs {a.comparison.baseline} "
            f"| {ratio_cell(a.comparison)} | {b.comparison.ratio:.2f}x | {inside} "
            f"| {a.comparison.verdict} | {b.comparison.verdict} |"
        )
    disagreements = _disagreements(pairs)
    if disagreements:
        lines += ["", "Verdicts that differ:", *disagreements]
    return "\n".join(
        [
            *lines,
            "",
            *calibration_table(calibrate(first.findings, second.findings)),
            "",
            f"A: {first.stop_text}; B: {second.stop_text}",
        ]
    )


def calibration_table(check: RepeatCheck) -> list[str]:
    """Per kind and in all: B inside A's intervals, verdicts that agree, opposite verdicts and
    the intervals' median widths, each against its target."""
    header = (
        "| kind of comparison | B inside A's interval | verdicts agree | opposite "
        "| median width A | median width B |"
    )
    lines = [header, _separator(header)]
    for found in [*check.kinds, check.total]:
        name = "**all**" if found.kind is None else str(found.kind)
        lines.append(
            f"| {name} | {found.inside} of {found.comparisons} ({_share(found.inside_share)}) "
            f"| {found.agree} of {found.comparisons} ({_share(found.agree_share)}) "
            f"| {found.opposite} | {_pct(found.median_width_first)} "
            f"| {_pct(found.median_width_second)} |"
        )
    total = check.total
    worst = min(check.kinds, key=lambda found: found.inside_share, default=total)
    beyond = (
        "none beyond what the intervals expected"
        if check.between_runs_sd is None
        else f"a standard deviation of {_pct(check.between_runs_sd)} of a log ratio beyond what "
        "the intervals expected"
    )
    return [
        *lines,
        "",
        f"Targets: B inside A's interval >= {INSIDE_TARGET:.0%} in every kind (lowest: "
        f"{_share(worst.inside_share)}, {_met(worst.inside_share >= INSIDE_TARGET)}); verdicts "
        f"agree >= {VERDICTS_AGREE_TARGET:.0%} ({_share(total.agree_share)}, "
        f"{_met(total.agree_share >= VERDICTS_AGREE_TARGET)}); {OPPOSITE_TARGET} opposite "
        f"({total.opposite}, {_met(total.opposite <= OPPOSITE_TARGET)}); median width <= "
        f"{WIDTH_TARGET:.0%} (A {_pct(total.median_width_first)}, "
        f"{_met((total.median_width_first or 0.0) <= WIDTH_TARGET)}). "
        f"{'Calibrated' if check.met else '**Not calibrated**'} on this host.",
        f"Between the runs: {beyond}.",
        *_expected_agreement(check.expected_agree),
    ]


def _expected_agreement(expected: float | None) -> list[str]:
    if expected is None:
        return []
    reachable = (
        ""
        if expected >= VERDICTS_AGREE_TARGET
        else f"; the {VERDICTS_AGREE_TARGET:.0%} target is out of reach for these comparisons "
        "unless the intervals narrow (more rounds, a quieter host)"
    )
    return [
        f"Verdicts expected to agree at this precision: {_share(expected)} (a comparison near "
        f"a verdict's threshold flips about half the time, however honest its interval){reachable}."
    ]


def _share(share: float) -> str:
    """A share with one decimal, so that 94.6% is not shown as a 95% that missed 95%."""
    return f"{share:.1%}"


def _disagreements(pairs: Sequence[tuple[Finding, Finding]]) -> list[str]:
    return [
        f"- {a.kind}: {a.comparison.candidate} vs {a.comparison.baseline}: "
        f"A {a.comparison.text}; B {b.comparison.text}"
        for a, b in pairs
        if a.comparison.verdict != b.comparison.verdict
    ]


def _met(met: bool) -> str:
    return "met" if met else "**not met**"
