"""`nogil-bench measure` as a user runs it: the real command line in a subprocess, and its
Markdown tables read back."""

import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.utils.live_server import NOGIL_BENCH

# The smallest measurement that still has intervals (two blocks of fresh processes, two rounds
# in each): seconds, not minutes.
ROUNDS = (
    "--repeats", "4", "--max-repeats", "4", "--block-rounds", "2", "--warmups", "0",
    "--workers", "2",
)  # fmt: skip
TINY = (*ROUNDS, "--gil", "0")
MEASURE_TIMEOUT_S = 300.0
ROWS_HEADER = "| python | GIL | runner |"


def measure(
    *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`nogil-bench measure ARGS` (the console script) in a fresh process, its output captured."""
    return subprocess.run(
        [NOGIL_BENCH, "measure", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        timeout=MEASURE_TIMEOUT_S,
    )


def measured_rows(report: str) -> list[dict[str, str]]:
    """The rows of every workload's main table (python, GIL, runner, workers, ...), by column."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in report.splitlines():
        if line.startswith(ROWS_HEADER):
            header = cells(line)
        elif header is not None and line.startswith("|"):
            if not line.startswith("|---"):
                rows.append(dict(zip(header, cells(line), strict=True)))
        else:
            header = None
    return rows


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]
