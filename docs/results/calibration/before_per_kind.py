"""The per-kind calibration table of two format-2 documents (the engine before blocks), by that
engine's own statistics: run it with that engine first on the path, e.g. from a worktree of
3458e47, the last commit before blocks:

    git worktree add /tmp/before 3458e47
    PYTHONPATH=/tmp/before/src .venv/bin/python docs/results/calibration/before_per_kind.py A B

The figures are those `nogil-bench compare` prints today for format-3 documents: per kind of
comparison, B's ratio inside A's interval, verdicts that agree, opposite verdicts, and the
median relative width (high - low) / ratio.
"""

import statistics
import sys
from pathlib import Path

from nogil_bench.bench.document import load_document

first, second = (load_document(Path(name)) for name in sys.argv[1:3])
later = {(f.kind, f.comparison.baseline, f.comparison.candidate): f for f in second.findings}
pairs = [
    (a, later[(a.kind, a.comparison.baseline, a.comparison.candidate)]) for a in first.findings
]


def width(finding: object) -> float | None:
    c = finding.comparison  # type: ignore[attr-defined]
    return None if c.ci_low is None else (c.ci_high - c.ci_low) / c.ratio


print("| kind of comparison | B inside A's CI | verdicts agree | opposite | median width A |")
print("|---|---|---|---|---|")
kinds = list(dict.fromkeys(a.kind for a, _ in pairs))
for kind in [*kinds, None]:
    chosen = [(a, b) for a, b in pairs if kind is None or a.kind == kind]
    inside = sum(a.comparison.contains(b.comparison.ratio) for a, b in chosen)
    agree = sum(a.comparison.verdict == b.comparison.verdict for a, b in chosen)
    flips = sum(
        {a.comparison.verdict.value, b.comparison.verdict.value} == {"faster", "slower"}
        for a, b in chosen
    )
    widths = [w for a, _ in chosen if (w := width(a)) is not None]
    n = len(chosen)
    name = "**all**" if kind is None else str(kind)
    print(
        f"| {name} | {inside} of {n} ({inside / n:.0%}) | {agree} of {n} ({agree / n:.0%}) "
        f"| {flips} | {statistics.median(widths):.1%} |"
    )
print(f"\nRun times: A {first.duration_s:.0f} s, B {second.duration_s:.0f} s of measuring")
