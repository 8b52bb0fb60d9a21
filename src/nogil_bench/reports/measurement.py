"""A measurement's page: the answer in words, the table, the chart, the environment, how to
reproduce it and its data to download. The CLI (`--html`) and the service (`/report`, shared
links) both draw it here, from the engine's own `Measurement`."""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nogil_bench.bench.config import CEILING
from nogil_bench.bench.document import to_json
from nogil_bench.bench.figures import pyperf_document, speedup_chart
from nogil_bench.bench.plan import SEQUENTIAL
from nogil_bench.bench.progress import Progress
from nogil_bench.bench.report import (
    MIB,
    gil_enabled_by_imports,
    outputs_that_differ,
    ratio_cell,
    share_cell,
    summary,
)
from nogil_bench.bench.results import Finding, Kind, Measurement, Row, grouped
from nogil_bench.bench.stats import NOISY_STDEV_RATIO, Verdict
from nogil_bench.reports.render import data_url, render

GIL_WORDS = {0: "GIL off", 1: "GIL on"}


@dataclass(frozen=True, slots=True)
class Reproduce:
    """How to measure it again: the command line, or the request body (with the command that
    measures that body locally)."""

    command: str | None = None
    request_body: str | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    tone: str = "plain"  # "plain", "good" (a verdict that decides), "warn"


@dataclass(frozen=True, slots=True)
class Answer:
    heading: str
    sentences: list[Sentence]


@dataclass(frozen=True, slots=True)
class TableRow:
    python: str
    gil: str
    runner: str
    workers: int
    wall_s: str
    stdev: str
    noisy: bool
    speedup: str
    verdict: str
    verdict_tone: str
    efficiency: str
    ceiling_share: str
    steal: str
    setup_s: str
    peak_rss_mib: str


@dataclass(frozen=True, slots=True)
class Table:
    workload: str
    description: str
    rows: list[TableRow]
    unsupported: list[tuple[str, str, str]]  # runner, python, why


@dataclass(frozen=True, slots=True)
class ComparisonLine:
    kind: str
    workload: str
    candidate: str
    baseline: str
    text: str
    tone: str


@dataclass(frozen=True, slots=True)
class Download:
    label: str
    filename: str
    href: str
    size_kib: str


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    subtitle: str
    answers: list[Answer]
    warnings: list[str]
    tables: list[Table]
    chart: str | None
    comparisons: list[ComparisonLine]
    method: str
    environment: list[tuple[str, str]]
    reproduce: Reproduce
    downloads: list[Download] = field(default_factory=list)


def measurement_page(
    measurement: Measurement, *, title: str, reproduce: Reproduce, shared: bool = False
) -> str:
    """The whole page, self-contained. A shared page leaves out the interpreters' paths on
    the measuring host, which name its users' folders."""
    page = Page(
        title=title,
        subtitle=subtitle(measurement),
        answers=answers(measurement),
        warnings=warnings(measurement),
        tables=tables(measurement),
        chart=chart(measurement),
        comparisons=comparisons(measurement),
        method=summary(measurement),
        environment=environment(measurement, shared=shared),
        reproduce=reproduce,
        downloads=downloads(measurement, shared=shared),
    )
    return render(
        "measurement.html", title=title, page=page, noisy_ratio=f"{NOISY_STDEV_RATIO:.0%}"
    )


def status_page(
    *,
    title: str,
    status: str,
    progress: Progress | None,
    reproduce: Reproduce,
    error: str | None,
    note: str | None = None,
) -> str:
    """A benchmark without a page of results: queued, running (how far it is), failed (why),
    cancelled, or measured without a document to draw (`note` says so); and what it measures."""
    return render(
        "status.html",
        title=title,
        status=status,
        progress=None if progress is None else progress_lines(progress),
        percent=None if progress is None else round(100 * progress.fraction),
        reproduce=reproduce,
        error=error,
        note=note,
    )


def progress_lines(progress: Progress) -> list[str]:
    lines = [
        f"{progress.rounds_done} of {progress.rounds_expected} rounds expected "
        f"(at most {progress.rounds_bound}), {progress.blocks_done} blocks of fresh processes "
        f"done, {progress.elapsed_s:.0f} s so far",
    ]
    if progress.phase == "setup":
        lines.append(f"setting up: {progress.setups_done} of {progress.setups} configurations")
    if progress.left_s is not None:
        lines.append(f"about {_duration(progress.left_s)} left")
    if progress.widest_ci is not None:
        lines.append(
            f"widest interval so far ±{progress.widest_ci:.1%} (target ±{progress.target_ci:.0%})"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def subtitle(measurement: Measurement) -> str:
    environment = measurement.environment
    return (
        f"{environment.get('cpu_count', '?')} CPUs ({environment.get('cpu_model', '?')}), "
        f"Python {environment.get('python_version', '?')}, "
        f"{measurement.blocks} blocks, {measurement.rounds} rounds, "
        f"{measurement.duration_s:.0f} s; recorded {environment.get('recorded_at', 'n/a')}"
    )


def _tone(verdict: Verdict) -> str:
    return {Verdict.FASTER: "good", Verdict.SLOWER: "warn"}.get(verdict, "plain")


def _label(row: Row) -> str:
    return "host ceiling" if row.runner == CEILING else row.runner


def answers(measurement: Measurement) -> list[Answer]:
    """Per workload (and interpreter, when several): in each GIL mode, the fastest
    configuration with its speedup and interval, then the verdicts that decide between its
    alternatives: the other runners against threads and the GIL's own effect at its worker
    count, and how much of the host's ceiling it reaches."""
    by_title = {row.title: row for row in measurement.rows}
    several_pythons = len({row.python for row in measurement.rows}) > 1
    found: list[Answer] = []
    for (workload, python), rows in grouped(
        measurement.rows, key=lambda row: (row.workload, row.python)
    ).items():
        sentences: list[Sentence] = []
        for gil in sorted({row.gil for row in rows}):
            sentences += _mode_answer(measurement, by_title, rows, gil)
        heading = workload + (f" on {python}" if several_pythons else "")
        if sentences:
            found.append(Answer(heading, sentences))
    return found


def _mode_answer(
    measurement: Measurement, by_title: dict[str, Row], rows: Sequence[Row], gil: int
) -> list[Sentence]:
    candidates = [
        row
        for row in rows
        if row.gil == gil and row.runner not in (SEQUENTIAL, CEILING) and row.speedup is not None
    ]
    if not candidates:
        return []
    best = max(candidates, key=lambda row: row.speedup.ratio if row.speedup else 0.0)
    assert best.speedup is not None
    mode = GIL_WORDS.get(gil, f"GIL={gil}")
    turned_on = " (but an import turned the GIL on: see the warning)" if best.gil_enabled_by else ""
    sentences = [
        Sentence(
            f"{mode}: the highest speedup measured is {best.runner} with {best.workers} "
            f"workers, {ratio_cell(best.speedup)} over sequential: "
            f"{best.speedup.text}{turned_on}.",
            _tone(best.speedup.verdict),
        )
    ]
    if best.ceiling_share is not None:
        sentences.append(
            Sentence(
                f"{mode}: that is {share_cell(best.ceiling_share)} of the host's ceiling at "
                f"{best.workers} workers (independent processes started together)."
            )
        )
    for finding in _deciding(measurement.findings, by_title, best):
        candidate = by_title[finding.comparison.candidate]
        baseline = by_title[finding.comparison.baseline]
        if finding.kind is Kind.GIL:
            subject = f"{candidate.runner} with {candidate.workers} workers, GIL off against on"
        else:
            subject = (
                f"{mode}: {candidate.runner} against {baseline.runner} "
                f"with {candidate.workers} workers"
            )
        sentences.append(
            Sentence(f"{subject}: {finding.comparison.text}.", _tone(finding.comparison.verdict))
        )
    return sentences


def _deciding(findings: Sequence[Finding], by_title: dict[str, Row], best: Row) -> list[Finding]:
    """The comparisons that decide for or against the best configuration: each other runner
    against threads at its worker count and GIL mode, and its runner's GIL=0 against GIL=1."""
    chosen = []
    for finding in findings:
        candidate = by_title.get(finding.comparison.candidate)
        if (
            candidate is None
            or candidate.workload != best.workload
            or candidate.python != best.python
            or candidate.workers != best.workers
            # The GIL's effect is said once, from the GIL=0 side (the comparison's candidate).
            or candidate.gil != best.gil
        ):
            continue
        if finding.kind is Kind.RUNNER or (
            finding.kind is Kind.GIL and candidate.runner == best.runner
        ):
            chosen.append(finding)
    return chosen


def warnings(measurement: Measurement) -> list[str]:
    found = [line for line in gil_enabled_by_imports(measurement) if line]
    found += [line for line in outputs_that_differ(measurement) if line]
    noisy = [row.title for row in measurement.rows if row.noisy]
    if noisy:
        which = (
            f"all {len(noisy)} configurations"
            if len(noisy) == len(measurement.rows)
            else f"{len(noisy)} of {len(measurement.rows)} configurations (flagged in the table)"
        )
        found.append(
            f"{which} had a standard deviation above {NOISY_STDEV_RATIO:.0%} of the median: "
            "treat their figures as rough, or measure longer (more blocks narrow the intervals)."
        )
    return found


def tables(measurement: Measurement) -> list[Table]:
    descriptions = measurement.environment.get("workloads", {})
    assert isinstance(descriptions, dict)
    found = []
    for workload, group in grouped(measurement.rows, key=lambda row: row.workload).items():
        found.append(
            Table(
                workload=workload,
                description=str(descriptions.get(workload, "")),
                rows=[table_row(row) for row in group],
                unsupported=[
                    (item.runner, item.python, item.reason)
                    for item in measurement.unsupported
                    if item.workload == workload
                ],
            )
        )
    return found


def table_row(row: Row) -> TableRow:
    stats = row.summary
    return TableRow(
        python=row.python,
        gil=str(row.gil) if row.gil_enabled_by is None else f"{row.gil}, but on",
        runner=_label(row),
        workers=row.workers,
        wall_s=f"{stats.median:.4f}",
        stdev=f"{stats.stdev_ratio:.1%}",
        noisy=stats.noisy,
        speedup="1x (baseline)" if row.runner == SEQUENTIAL else ratio_cell(row.speedup),
        # The numbers are in the speedup's cell; here the verdict alone.
        verdict="" if row.speedup is None else str(row.speedup.verdict),
        verdict_tone="plain" if row.speedup is None else _tone(row.speedup.verdict),
        efficiency="" if row.efficiency is None else f"{row.efficiency:.0%}",
        ceiling_share=share_cell(row.ceiling_share),
        steal="n/a" if row.steal_share_median is None else f"{row.steal_share_median:.1%}",
        setup_s=f"{row.setup_s:.3f}",
        peak_rss_mib=f"{row.peak_rss_bytes / MIB:.0f}",
    )


def chart(measurement: Measurement) -> str | None:
    svg = speedup_chart(measurement, "svg")
    return None if svg is None else data_url(svg, "image/svg+xml")


def comparisons(measurement: Measurement) -> list[ComparisonLine]:
    """Every comparison but each row's own speedup and ceiling share (those are in the table)."""
    return [
        ComparisonLine(
            kind=str(finding.kind),
            workload=finding.workload,
            candidate=finding.comparison.candidate,
            baseline=finding.comparison.baseline,
            text=finding.comparison.text,
            tone=_tone(finding.comparison.verdict),
        )
        for finding in measurement.findings
        if finding.kind in (Kind.GIL, Kind.RUNNER, Kind.PYTHON)
    ]


def environment(measurement: Measurement, *, shared: bool) -> list[tuple[str, str]]:
    """The facts the figures depend on, as label and value: each measured interpreter as its
    own workers described it, then the host as the harness saw it."""
    env = measurement.environment
    packages = env.get("packages", {})
    assert isinstance(packages, dict)
    return [
        *((f"Interpreter {python}", text) for python, text in interpreters(measurement, shared)),
        ("GIL as measured in each worker", gil_as_measured(measurement)),
        ("CPU", f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs"),
        ("Memory", f"{int(str(env.get('memory_bytes', 0))) / 1024**3:.1f} GiB"),
        (
            "Load average (1, 5, 15 min)",
            f"at the start {_loads(env.get('load_average_at_start'))}; "
            f"at the end {_loads(env.get('load_average'))}",
        ),
        (
            "Host CPU steal during the rounds",
            "n/a" if measurement.steal_share is None else f"{measurement.steal_share:.1%}",
        ),
        ("Operating system", str(env.get("platform", "?"))),
        ("nogil-bench", str(packages.get("nogil-bench", "?"))),
        ("Recorded", str(env.get("recorded_at", "n/a"))),
        ("Why measuring stopped", measurement.stop_text),
    ]


def interpreters(measurement: Measurement, shared: bool) -> list[tuple[str, str]]:
    """Per interpreter measured: its version, build and configure flags (from its own worker
    processes' environment); a shared page leaves out paths on the measuring host."""
    found = []
    for python, rows in grouped(measurement.rows, key=lambda row: row.python).items():
        env = rows[0].environment
        build = "free-threaded" if env.get("free_threaded") else "with the GIL"
        flags = str(env.get("config_args") or "n/a")
        where = "" if shared else f" at {rows[0].python_path}"
        text = (
            f"{env.get('implementation', 'python')} {env.get('python_version', '?')}, {build}"
            f"{where}; configure {without_paths_in(flags) if shared else flags}"
        )
        found.append((python, text))
    return found


def _loads(value: object) -> str:
    if not isinstance(value, list):
        return "n/a"
    return ", ".join(f"{float(load):.2f}" for load in value)


# A configure argument's path (--prefix=/home/ada/...): it names folders on the host.
PATH_VALUE = re.compile(r"=/[^'\"\s]*")


def without_paths_in(text: str) -> str:
    return PATH_VALUE.sub("=[path]", text)


def gil_as_measured(measurement: Measurement) -> str:
    """Per GIL mode asked for, what the worker processes found (sys._is_gil_enabled())."""
    parts = []
    for gil in sorted({row.gil for row in measurement.rows}):
        states = {
            _gil_word(row.environment.get("gil_enabled"))
            for row in measurement.rows
            if row.gil == gil
        }
        found = " and ".join(sorted(states))
        parts.append(f"GIL={gil} asked: {found} in its workers")
    return "; ".join(parts)


def _gil_word(state: object) -> str:
    return "on" if state is True else "off" if state is False else "unknown"


def downloads(measurement: Measurement, *, shared: bool) -> list[Download]:
    document = to_json(measurement)
    if shared:
        document = _without_paths(document)
    files = [
        ("The measurement document (nogil-bench report FILE)", "measurement.json", document),
        ("The rounds as a pyperf suite (python -m pyperf stats FILE)", "pyperf.json", None),
    ]
    found = []
    for label, filename, content in files:
        data = content if content is not None else pyperf_document(measurement)
        if shared and content is None:
            data = _without_paths(data)
        encoded = (json.dumps(data, indent=1) + "\n").encode()
        found.append(
            Download(
                label, filename, data_url(encoded, "application/json"), f"{len(encoded) / 1024:.0f}"
            )
        )
    return found


PATH_KEYS = frozenset({"python_path", "python_executable"})


def _without_paths[T](value: T) -> T:
    """The value with every interpreter path blanked, and paths in configure flags: a path
    names the host's folders."""
    if isinstance(value, dict):
        return {  # type: ignore[return-value]
            key: (
                ""
                if key in PATH_KEYS
                else without_paths_in(item)
                if key == "config_args" and isinstance(item, str)
                else _without_paths(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_paths(item) for item in value]  # type: ignore[return-value]
    return value
