"""`nogil-bench measure`'s progress while it measures, on stderr.

On a terminal, one live line drawn with rich: the phase (the first block's set-ups, one at a
time, then rounds), a bar filled towards the rounds the adaptive stop is expected to need, the
rounds done of the bound, the time elapsed, an estimate of the time left, and the widest
interval so far against the target (bench.progress). Without a terminal (a log, a pipe, CI),
the engine's plain lines, exactly as before: a file should not fill with redraws. `--quiet`
shows neither; the tables on stdout are printed whatever this shows.

    with showing_progress(quiet=args.quiet) as shown:
        measure_matrix(planned, design, progress=shown.line, on_progress=shown.update)
"""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from nogil_bench.bench.progress import Progress

__all__ = ["LiveBar", "Shown", "describe", "showing_progress"]

# Redraws a second: enough for the elapsed time to tick, few enough to cost nothing.
REFRESH_PER_SECOND = 4
BAR_WIDTH = 24
# Below this many columns the line leaves out the bar and the elapsed time.
WIDE_COLUMNS = 120


@dataclass(frozen=True, slots=True)
class Shown:
    """Where a measurement's progress goes: `line` takes the engine's text lines (measure_matrix's
    `progress`), `update` its Progress (its `on_progress`; None when nothing draws it)."""

    line: Callable[[str], None]
    update: Callable[[Progress], None] | None


@contextmanager
def showing_progress(*, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Shown]:
    """The progress of the measurements made inside, on `stream` (default: stderr): a live bar
    on a terminal, plain lines elsewhere, nothing when `quiet`. Several measurements in a row
    share the one bar: it draws whichever Progress came last."""
    out = sys.stderr if stream is None else stream
    if quiet:
        yield Shown(_silent, None)
        return
    if not out.isatty():
        yield Shown(_plain(out), None)
        return
    console = Console(file=out)
    bar = LiveBar(width=lambda: console.width)
    # stdout is left alone: the tables go there, whatever draws on stderr.
    with Live(
        console=console,
        get_renderable=bar.render,
        refresh_per_second=REFRESH_PER_SECOND,
        redirect_stdout=False,
    ):
        # The bar says what the engine's lines say (each set-up, each block's widest interval).
        yield Shown(_silent, bar.update)


def _silent(_: str) -> None:
    pass


def _plain(stream: TextIO) -> Callable[[str], None]:
    def line(text: str) -> None:
        print(text, file=stream, flush=True)

    return line


class LiveBar:
    """The latest Progress, drawn as one line. Between reports (a round can take a minute) the
    elapsed time goes on ticking and the estimate counting down, from when the report came."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] = lambda: WIDE_COLUMNS,
    ) -> None:
        self.clock = clock
        self.width = width
        # Replaced whole by the measuring thread, read by rich's refresh thread.
        self.latest: tuple[Progress, float] | None = None

    def update(self, progress: Progress) -> None:
        self.latest = (progress, self.clock())

    def render(self) -> RenderableType:
        latest = self.latest
        if latest is None:
            return _line(Text("starting worker processes", style="cyan"), ProgressBar(None))
        progress, received = latest
        since = self.clock() - received
        cells = describe(progress, since_s=since)
        if self.width() < WIDE_COLUMNS:
            # A narrow terminal keeps the figures and drops the bar and the elapsed time,
            # rather than cutting every cell short.
            phase, _, rounds, _, left, widest = cells
            cells = (phase, rounds, left, widest)
        return _line(*cells)


def describe(progress: Progress, *, since_s: float = 0.0) -> tuple[RenderableType, ...]:
    """The bar's cells for `progress`, `since_s` seconds after it was reported."""
    if progress.phase == "setup":
        phase = Text(f"set-up {progress.setups_done}/{progress.setups}", style="cyan")
        bar = ProgressBar(None, width=BAR_WIDTH)  # pulses: set-ups are not rounds
    else:
        phase = Text(f"block {min(progress.blocks_done + 1, _blocks(progress))}", style="cyan")
        bar = ProgressBar(1.0, progress.fraction, width=BAR_WIDTH)
    rounds = f"rounds {progress.rounds_done}/{progress.rounds_bound}"
    if progress.rounds_expected < progress.rounds_bound:
        rounds += f" (~{progress.rounds_expected} expected)"
    elapsed = f"{clock_time(progress.elapsed_s + since_s)} elapsed"
    if progress.left_s is None:
        left = "time left: known after a round"
    else:
        left = f"~{clock_time(max(0.0, progress.left_s - since_s))} left"
    target = f"target ±{progress.target_ci:.1%}"
    widest = (
        f"no CI yet ({target})"
        if progress.widest_ci is None
        else f"widest CI ±{progress.widest_ci:.1%} ({target})"
    )
    within = progress.widest_ci is not None and progress.widest_ci <= progress.target_ci
    return (
        phase,
        bar,
        Text(rounds),
        Text(elapsed, style="dim"),
        Text(left, style="bold"),
        Text(widest, style="green" if within else "yellow"),
    )


def _blocks(progress: Progress) -> int:
    return max(1, progress.rounds_bound // max(1, progress.block_rounds))


def _line(*cells: RenderableType) -> Table:
    row = Table.grid(padding=(0, 1))
    for _ in cells:
        row.add_column(no_wrap=True, overflow="ellipsis")
    row.add_row(*cells)
    return row


def clock_time(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
