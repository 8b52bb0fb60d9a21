"""The JSON document of a measurement: every round's values per configuration, the
comparisons, the host's steal and why measuring stopped. Loading re-derives the comparisons
from the rounds, so a document re-renders with the current statistics."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nogil_bench.bench.results import (
    Design,
    Measurement,
    Row,
    RunRecord,
    StopReason,
    Unsupported,
    analyse,
)
from nogil_bench.bench.stats import Comparison
from nogil_bench.core.files import write_atomically

# 1: configurations in sequence, no rounds; 2: rounds in one process per configuration, no
# blocks; 3: blocks of fresh processes, each run labelled with its block.
FORMAT = 3


class DocumentFormatError(ValueError):
    """Not a document this engine wrote; the message says what it is instead."""


def to_json(measurement: Measurement) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "environment": measurement.environment,
        "rounds": measurement.rounds,
        "blocks": measurement.blocks,
        "design": asdict(measurement.design),
        "variance": asdict(measurement.variance),
        "stop": measurement.stop.value,
        "stop_text": measurement.stop_text,
        "steal_share": measurement.steal_share,
        "duration_s": measurement.duration_s,
        "configurations": [row_to_json(row) for row in measurement.rows],
        "unsupported": [asdict(unsupported) for unsupported in measurement.unsupported],
        "comparisons": [
            {"kind": finding.kind.value, "workload": finding.workload}
            | comparison_to_json(finding.comparison)
            for finding in measurement.findings
        ],
    }


def row_to_json(row: Row) -> dict[str, Any]:
    summary = row.summary
    return {
        "title": row.title,
        "workload": row.workload,
        "runner": row.runner,
        "workers": row.workers,
        "gil": row.gil,
        "python": row.python,
        "python_path": row.python_path,
        # The i-th value of every configuration was measured in round i.
        "wall_s": row.wall_s,
        "blocks": row.block_of_runs,
        "wall_s_median": summary.median,
        "wall_s_stdev": summary.stdev,
        "wall_s_iqr": summary.iqr,
        "wall_s_mad": summary.mad,
        "noisy": summary.noisy,
        "gil_enabled_by": row.gil_enabled_by,
        "steal_share_median": row.steal_share_median,
        "speedup": None if row.speedup is None else comparison_to_json(row.speedup),
        "ceiling_share": None
        if row.ceiling_share is None
        else comparison_to_json(row.ceiling_share),
        "efficiency": row.efficiency,
        "karp_flatt": row.karp_flatt,
        "setup_s": row.setup_s,
        "end_to_end_s": row.end_to_end_s,
        "teardown_s": row.teardown_s,
        "peak_rss_bytes": row.peak_rss_bytes,
        "output_digest": row.output_digest,
        "warmups_s": row.warmups_s,
        "runs": [asdict(run) for run in row.runs],
        "environment": row.environment,
    }


def comparison_to_json(comparison: Comparison) -> dict[str, Any]:
    return asdict(comparison) | {"verdict": comparison.verdict.value}


def from_json(document: dict[str, Any]) -> Measurement:
    if document.get("format") != FORMAT:
        if "results" in document:
            raise DocumentFormatError(
                "written by the previous engine (configurations in sequence, no paired rounds): "
                "its figures cannot be re-derived; measure again"
            )
        if document.get("format") == 2:
            raise DocumentFormatError(
                "written by the engine before blocks (one process per configuration): what "
                "changes between processes was not measured, so its intervals cannot be "
                "re-derived; measure again"
            )
        raise DocumentFormatError(f"not a format-{FORMAT} benchmark document")
    rows = [row_from_json(row) for row in document["configurations"]]
    return Measurement(
        rows=rows,
        findings=analyse(rows),
        rounds=document["rounds"],
        blocks=document["blocks"],
        design=Design(**document["design"]),
        stop=StopReason(document["stop"]),
        steal_share=document["steal_share"],
        duration_s=document["duration_s"],
        environment=document["environment"],
        # Documents from before runners were checked list none.
        unsupported=[Unsupported(**found) for found in document.get("unsupported", [])],
    )


def row_from_json(row: dict[str, Any]) -> Row:
    return Row(
        workload=row["workload"],
        runner=row["runner"],
        workers=row["workers"],
        gil=row["gil"],
        python=row["python"],
        python_path=row["python_path"],
        setup_s=row["setup_s"],
        teardown_s=row["teardown_s"],
        peak_rss_bytes=row["peak_rss_bytes"],
        output_digest=row["output_digest"],
        warmups_s=row["warmups_s"],
        runs=[RunRecord(**run) for run in row["runs"]],
        environment=row["environment"],
    )


def write_document(path: Path, measurement: Measurement) -> None:
    write_atomically(path, (json.dumps(to_json(measurement), indent=2) + "\n").encode())


def load_document(path: Path) -> Measurement:
    try:
        return from_json(json.loads(path.read_text()))
    except DocumentFormatError as error:
        raise DocumentFormatError(f"{path}: {error}") from None
