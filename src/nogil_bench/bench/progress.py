"""How far a measurement is, while it runs: what the CLI's live bar draws and what a running
benchmark's `GET` carries, both from the one structure the engine reports (harness.measure_matrix
calls `on_progress` after each setup of the first block, after every round and after every
block).

The estimate of the time left has to account for the adaptive stop: a measurement runs between
`min_blocks` and `max_blocks` blocks, and which one it stops at depends on how fast its
intervals narrow. A 95% interval's half-width shrinks about as 1/sqrt(blocks), so from the
widest interval after `blocks_done` blocks, the blocks the stop needs are about

    blocks_needed = ceil(blocks_done * (widest / target_ci) ** 2)

clamped to [min_blocks, max_blocks]; before any interval exists (fewer than 2 blocks), the
estimate is min_blocks, the least the measurement will run. Time left is then the rounds left at
the measured seconds per round, plus one set-up for every block still to start (as a block's
set-up was last measured: later blocks set up all their processes at once, faster than the
first block's one at a time).
"""

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from nogil_bench.bench.results import Design
from nogil_bench.bench.stats import MIN_CI_BLOCKS

__all__ = ["Estimate", "Progress", "Tracker", "estimate", "expected_blocks", "widest_of"]

type Phase = Literal["setup", "rounds"]
PHASES: tuple[Phase, ...] = ("setup", "rounds")


@dataclass(frozen=True, slots=True)
class Progress:
    """One moment of a measurement: what is done, of how much, and what is expected to be left.

    `rounds_bound` is what the design allows at most (`max_blocks` blocks); `rounds_expected`
    is where the adaptive stop is now expected to end (see `expected_blocks`), which is what
    the bar fills towards. `widest_ci` is the widest relative half-width of any comparison's
    interval so far, against `target_ci`: once every interval is within it (and `min_blocks`
    are done), measuring stops.
    """

    phase: Phase  # setting up block 1's processes one by one, or measuring rounds
    setups_done: int  # configurations set up in the current block...
    setups: int  # ...of all of them
    rounds_done: int  # rounds finished so far, over all blocks
    rounds_bound: int  # design.max_blocks * design.block_rounds
    rounds_expected: int  # rounds the adaptive stop is now expected to need
    blocks_done: int
    block_rounds: int
    elapsed_s: float
    left_s: float | None  # estimated seconds left; None before any round is timed
    widest_ci: float | None  # None before intervals exist (2 blocks)
    target_ci: float

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict, by field name (what a benchmark's row stores)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Progress:
        """The Progress that `to_json` wrote; ValueError when `data` is not one."""
        phase = data["phase"]
        if phase not in PHASES:
            raise ValueError(f"unknown progress phase {phase!r}")
        left_s = data["left_s"]
        widest_ci = data["widest_ci"]
        return cls(
            phase=phase,
            setups_done=int(data["setups_done"]),
            setups=int(data["setups"]),
            rounds_done=int(data["rounds_done"]),
            rounds_bound=int(data["rounds_bound"]),
            rounds_expected=int(data["rounds_expected"]),
            blocks_done=int(data["blocks_done"]),
            block_rounds=int(data["block_rounds"]),
            elapsed_s=float(data["elapsed_s"]),
            left_s=None if left_s is None else float(left_s),
            widest_ci=None if widest_ci is None else float(widest_ci),
            target_ci=float(data["target_ci"]),
        )

    @property
    def fraction(self) -> float:
        """The share of the expected rounds done, in [0, 1]: what a bar fills."""
        if self.rounds_expected <= 0:
            return 0.0
        return min(1.0, max(0.0, self.rounds_done / self.rounds_expected))

    @property
    def at_block_end(self) -> bool:
        """Reported after a whole block: the rounds done fill the blocks done exactly. (Each
        round's own report comes before its block is counted done, so only the after-block
        report matches.) What a throttled reader keeps even when it skips others."""
        return (
            self.phase == "rounds"
            and self.blocks_done > 0
            and self.rounds_done == self.blocks_done * self.block_rounds
        )


def expected_blocks(design: Design, blocks_done: int, widest: float | None) -> int:
    """The blocks the adaptive stop is expected to end at, after `blocks_done` blocks whose
    widest interval has relative half-width `widest`.

    None (no interval yet) expects `min_blocks`; math.inf (some comparison cannot have an
    interval, so the stop can never converge) expects `max_blocks`. Otherwise, as an interval
    narrows about as 1/sqrt(blocks), ceil(blocks_done * (widest / target_ci)^2) blocks, which
    is `blocks_done` itself once every interval is within the target. Never fewer than the
    blocks done, nor outside [min_blocks, max_blocks].
    """
    low = max(design.min_blocks, blocks_done)
    if widest is None:
        needed = design.min_blocks
    elif widest <= design.target_ci:
        needed = blocks_done  # converged: it stops here, if min_blocks are done
    elif not math.isfinite(widest) or design.target_ci <= 0:
        needed = design.max_blocks
    else:
        needed = math.ceil(blocks_done * (widest / design.target_ci) ** 2)
    return min(design.max_blocks, max(low, needed))


@dataclass(frozen=True, slots=True)
class Estimate:
    rounds_expected: int
    left_s: float | None


def estimate(
    design: Design,
    *,
    blocks_done: int,
    block_under_way: bool,
    rounds_done: int,
    rounds_s: float,
    block_setup_s: float | None,
    widest: float | None,
) -> Estimate:
    """The rounds the measurement is expected to need and the seconds left to measure them.

    `rounds_s` is the time spent in the `rounds_done` rounds so far (their mean is the time per
    round); `block_setup_s` what one block costs outside its rounds (starting, setting up and
    stopping its processes), for each block still to start: `block_under_way` says whether a
    block is started but not done (its set-up is behind it). `widest` as for expected_blocks.
    No time is estimated before a round is timed.
    """
    blocks = expected_blocks(design, blocks_done, widest)
    if block_under_way:
        blocks = min(design.max_blocks, max(blocks, blocks_done + 1))
    rounds_expected = blocks * design.block_rounds
    if rounds_done <= 0:
        return Estimate(rounds_expected, None)
    rounds_left = max(0, rounds_expected - rounds_done)
    blocks_to_start = max(0, blocks - blocks_done - int(block_under_way))
    left_s = rounds_left * rounds_s / rounds_done + blocks_to_start * (block_setup_s or 0.0)
    return Estimate(rounds_expected, left_s)


def widest_of(
    widths: Sequence[float | None], blocks_done: int
) -> tuple[float | None, float | None]:
    """The widest interval to show (finite, or None while none exists) and the one to estimate
    from: math.inf when, past the blocks an interval needs, some comparison still has none (the
    adaptive stop cannot converge then), 0.0 when there is nothing to compare."""
    if blocks_done < MIN_CI_BLOCKS:
        return None, None
    known = [width for width in widths if width is not None and math.isfinite(width)]
    shown = max(known) if known else None
    if len(known) < len(widths):
        return shown, math.inf
    return shown, shown if shown is not None else 0.0


class Tracker:
    """The engine's side of progress: told as blocks, set-ups and rounds start and end, it
    times them and makes each report's Progress. Round times are measured between the
    harness's marks, so that what a report's reader does (a database write, a redraw) between
    rounds does not count as measuring."""

    def __init__(
        self, design: Design, setups: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.design = design
        self.setups = setups
        self.clock = clock
        self.started = clock()
        self.phase: Phase = "setup"
        self.setups_done = 0
        self.blocks_done = 0
        self.rounds_done = 0
        self.rounds_s = 0.0
        self.block_setup_s: float | None = None
        self.widest: float | None = None  # to estimate from (math.inf: cannot converge)
        self.widest_shown: float | None = None
        self._block_started = self.started
        self._block_rounds_s = 0.0
        self._round_started = self.started
        self._under_way = False

    def block_starts(self) -> None:
        self._block_started = self.clock()
        self._block_rounds_s = 0.0
        self._under_way = True
        self.setups_done = 0

    def set_up(self, done: int) -> Progress:
        """The first block's `done`-th configuration is set up (they are, one at a time)."""
        self.phase = "setup"
        self.setups_done = done
        return self.now()

    def rounds_start(self) -> None:
        """Every process of the block is set up: its set-up is a block's cost until the block
        ends (and the whole of what it spent outside rounds is known)."""
        self.phase = "rounds"
        self.setups_done = self.setups
        self.block_setup_s = self.clock() - self._block_started

    def round_starts(self) -> None:
        self._round_started = self.clock()

    def round_done(self) -> Progress:
        took = self.clock() - self._round_started
        self.rounds_s += took
        self._block_rounds_s += took
        self.rounds_done += 1
        return self.now()

    def block_done(self, widths: Sequence[float | None]) -> Progress:
        """The block is done and analysed; `widths` are every comparison's relative
        half-width now (None where a comparison has no interval)."""
        self.blocks_done += 1
        self._under_way = False
        self.block_setup_s = self.clock() - self._block_started - self._block_rounds_s
        self.widest_shown, self.widest = widest_of(widths, self.blocks_done)
        return self.now()

    def now(self) -> Progress:
        found = estimate(
            self.design,
            blocks_done=self.blocks_done,
            block_under_way=self._under_way,
            rounds_done=self.rounds_done,
            rounds_s=self.rounds_s,
            block_setup_s=self.block_setup_s,
            widest=self.widest,
        )
        return Progress(
            phase=self.phase,
            setups_done=self.setups_done,
            setups=self.setups,
            rounds_done=self.rounds_done,
            rounds_bound=self.design.max_blocks * self.design.block_rounds,
            rounds_expected=found.rounds_expected,
            blocks_done=self.blocks_done,
            block_rounds=self.design.block_rounds,
            elapsed_s=self.clock() - self.started,
            left_s=found.left_s,
            widest_ci=self.widest_shown,
            target_ci=self.design.target_ci,
        )
