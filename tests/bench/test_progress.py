"""How far a measurement is, and how long the rest will take: the estimate accounts for the
adaptive stop (an interval's half-width shrinks about as 1/sqrt(blocks)), and the engine
reports a Progress after each set-up of the first block, every round and every block."""

import json
import math

import pytest

from nogil_bench.bench.config import Config
from nogil_bench.bench.harness import measure_matrix
from nogil_bench.bench.plan import Matrix, this_interpreter
from nogil_bench.bench.progress import (
    Estimate,
    Progress,
    Tracker,
    estimate,
    expected_blocks,
    widest_of,
)
from nogil_bench.bench.results import Design

DESIGN = Design(min_blocks=2, max_blocks=6, block_rounds=5, target_ci=0.05)


def progress(**overrides: object) -> Progress:
    fields: dict[str, object] = {
        "phase": "rounds",
        "setups_done": 4,
        "setups": 4,
        "rounds_done": 7,
        "rounds_bound": 30,
        "rounds_expected": 10,
        "blocks_done": 1,
        "block_rounds": 5,
        "elapsed_s": 12.5,
        "left_s": 9.0,
        "widest_ci": None,
        "target_ci": 0.05,
    }
    return Progress(**(fields | overrides))  # type: ignore[arg-type]


# The blocks the adaptive stop is expected to need.


def test_before_any_interval_the_least_the_measurement_will_run_is_expected() -> None:
    assert expected_blocks(DESIGN, 0, None) == DESIGN.min_blocks
    assert expected_blocks(DESIGN, 1, None) == DESIGN.min_blocks


def test_a_wide_interval_needs_blocks_in_proportion_to_its_width_squared() -> None:
    # After 2 blocks at 1.5x the target: 2 * 1.5^2 = 4.5, so 5 blocks.
    assert expected_blocks(DESIGN, 2, 0.075) == 5
    # After 3 blocks at 1.2x: 3 * 1.44 = 4.32, so 5.
    assert expected_blocks(DESIGN, 3, 0.06) == 5


def test_the_expected_blocks_stay_within_the_design_and_the_blocks_done() -> None:
    assert expected_blocks(DESIGN, 2, 0.5) == DESIGN.max_blocks  # 200 blocks, bounded at 6
    # Within the target after 2 blocks: it stops there, at min_blocks.
    assert expected_blocks(DESIGN, 2, 0.01) == 2
    # Within the target after 4 blocks: it stops at 4, not back at min_blocks.
    assert expected_blocks(DESIGN, 4, 0.049) == 4
    # Just past the target: at least one more block.
    assert expected_blocks(DESIGN, 4, 0.0501) == 5
    # min_blocks run whatever the intervals say.
    assert expected_blocks(Design(min_blocks=3, max_blocks=6), 2, 0.0) == 3


def test_an_interval_that_cannot_exist_or_a_target_of_zero_runs_to_the_bound() -> None:
    assert expected_blocks(DESIGN, 2, math.inf) == DESIGN.max_blocks
    assert expected_blocks(DESIGN, 2, math.nan) == DESIGN.max_blocks
    assert expected_blocks(Design(target_ci=0.0), 2, 0.01) == Design().max_blocks


def test_the_stop_and_the_estimate_agree_on_convergence() -> None:
    """The adaptive stop ends a measurement once every interval is within the target; the
    estimate then expects exactly the blocks done, and more whenever one is not."""
    for blocks_done in range(DESIGN.min_blocks, DESIGN.max_blocks + 1):
        for widest in (0.0, 0.03, 0.05, 0.0500001, 0.07, 0.2):
            blocks = expected_blocks(DESIGN, blocks_done, widest)
            converged = widest <= DESIGN.target_ci
            assert (blocks == blocks_done) is converged or blocks == DESIGN.max_blocks


# The time left.


def test_no_time_is_estimated_before_a_round_is_timed() -> None:
    found = estimate(
        DESIGN,
        blocks_done=0,
        block_under_way=True,
        rounds_done=0,
        rounds_s=0.0,
        block_setup_s=3.0,
        widest=None,
    )
    assert found == Estimate(rounds_expected=10, left_s=None)


def test_time_left_is_the_rounds_left_at_the_mean_round_plus_a_set_up_per_block_to_start() -> None:
    # Block 1 of 2 under way, 2 of its 5 rounds done in 4 s: 8 rounds left at 2 s, and block 2
    # still to set up (3 s).
    found = estimate(
        DESIGN,
        blocks_done=0,
        block_under_way=True,
        rounds_done=2,
        rounds_s=4.0,
        block_setup_s=3.0,
        widest=None,
    )
    assert found == Estimate(rounds_expected=10, left_s=8 * 2.0 + 3.0)


def test_time_left_follows_the_blocks_the_widest_interval_needs() -> None:
    # 2 blocks done, the widest at 1.5x the target: 5 blocks expected, so 15 rounds and 3 block
    # set-ups left.
    found = estimate(
        DESIGN,
        blocks_done=2,
        block_under_way=False,
        rounds_done=10,
        rounds_s=20.0,
        block_setup_s=1.0,
        widest=0.075,
    )
    assert found == Estimate(rounds_expected=25, left_s=15 * 2.0 + 3 * 1.0)


def test_a_block_under_way_costs_its_rounds_left_but_no_set_up() -> None:
    # Block 3 of 3 (min_blocks) under way, 1 of its 5 rounds done, at 1 s a round.
    found = estimate(
        Design(min_blocks=3, max_blocks=6, block_rounds=5, target_ci=0.05),
        blocks_done=2,
        block_under_way=True,
        rounds_done=11,
        rounds_s=11.0,
        block_setup_s=5.0,
        widest=0.01,
    )
    assert found == Estimate(rounds_expected=15, left_s=4 * 1.0)  # no further set-up


def test_nothing_is_left_once_the_stop_is_reached() -> None:
    found = estimate(
        DESIGN,
        blocks_done=2,
        block_under_way=False,
        rounds_done=10,
        rounds_s=10.0,
        block_setup_s=5.0,
        widest=0.01,
    )
    assert found == Estimate(rounds_expected=10, left_s=0.0)


def test_the_widest_interval_is_shown_once_intervals_exist() -> None:
    assert widest_of([0.1, 0.2], blocks_done=1) == (None, None)
    assert widest_of([0.1, 0.2], blocks_done=2) == (0.2, 0.2)
    # One comparison without an interval past 2 blocks: the stop cannot converge.
    assert widest_of([0.1, None], blocks_done=2) == (0.1, math.inf)
    assert widest_of([None], blocks_done=3) == (None, math.inf)
    # Nothing to compare: nothing holds the stop back.
    assert widest_of([], blocks_done=2) == (None, 0.0)


# The Progress itself.


def test_progress_goes_to_json_and_back_whole() -> None:
    shown = progress(widest_ci=0.071, left_s=None)
    stored = json.loads(json.dumps(shown.to_json()))

    assert stored["rounds_done"] == 7
    assert stored["rounds_bound"] == 30
    assert stored["phase"] == "rounds"
    assert Progress.from_json(stored) == shown


def test_progress_from_json_refuses_an_unknown_phase() -> None:
    with pytest.raises(ValueError, match="phase"):
        Progress.from_json(progress().to_json() | {"phase": "teardown"})


def test_the_fraction_is_of_the_expected_rounds_clipped_to_one() -> None:
    assert progress(rounds_done=5, rounds_expected=10).fraction == 0.5
    assert progress(rounds_done=12, rounds_expected=10).fraction == 1.0
    assert progress(rounds_done=0, rounds_expected=0).fraction == 0.0


def test_only_the_report_after_a_block_is_at_a_block_end() -> None:
    assert progress(rounds_done=10, blocks_done=2).at_block_end
    # The block's last round, reported before the block is counted done.
    assert not progress(rounds_done=10, blocks_done=1).at_block_end
    assert not progress(phase="setup", rounds_done=0, blocks_done=0).at_block_end


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_tracker_times_rounds_and_set_ups_as_the_engine_marks_them() -> None:
    clock = FakeClock()
    design = Design(min_blocks=2, max_blocks=3, block_rounds=2, target_ci=0.05)
    tracker = Tracker(design, setups=2, clock=clock)

    tracker.block_starts()
    clock.now += 1.0
    first = tracker.set_up(1)
    clock.now += 1.0
    second = tracker.set_up(2)
    tracker.rounds_start()
    rounds = []
    for _ in range(2):
        clock.now += 0.5  # between rounds: a reader's work, not a round's
        tracker.round_starts()
        clock.now += 3.0
        rounds.append(tracker.round_done())
    clock.now += 1.0  # stopping the block's processes
    block = tracker.block_done([None])

    assert (first.phase, first.setups_done, first.setups, first.left_s) == ("setup", 1, 2, None)
    assert (second.setups_done, second.elapsed_s) == (2, 2.0)
    assert [(p.phase, p.rounds_done, p.blocks_done) for p in rounds] == [
        ("rounds", 1, 0),
        ("rounds", 2, 0),
    ]
    # Three rounds left at 3 s, and block 2 to set up as block 1 did so far (2 s).
    assert rounds[0].left_s == pytest.approx(3 * 3.0 + 2.0)
    assert rounds[0].rounds_expected == 4
    assert rounds[0].rounds_bound == 6
    # Block 1 cost 2 s of set-up, 1 s between rounds and 1 s of stopping outside its rounds.
    assert block.at_block_end
    assert (block.blocks_done, block.widest_ci) == (1, None)
    assert block.left_s == pytest.approx(2 * 3.0 + 4.0)
    assert block.elapsed_s == pytest.approx(10.0)


def test_the_engine_reports_each_set_up_every_round_and_every_block() -> None:
    fib = Config("fib", "sequential", 1, warmups=0, params={"n": 5, "tasks": 1})
    planned = Matrix([this_interpreter()], [0], [fib], ["threads"], [1]).plan()
    design = Design(min_blocks=2, max_blocks=2, block_rounds=2, target_ci=math.inf)
    lines: list[str] = []
    reports: list[Progress] = []

    measure_matrix(planned, design, progress=lines.append, on_progress=reports.append)

    setups = len(planned)
    assert [(p.phase, p.setups_done) for p in reports[:setups]] == [
        ("setup", done) for done in range(1, setups + 1)
    ]
    rounds = reports[setups:]
    # Two blocks, each: its two rounds, then the block itself.
    assert [(p.rounds_done, p.blocks_done) for p in rounds] == [
        (1, 0),
        (2, 0),
        (2, 1),
        (3, 1),
        (4, 1),
        (4, 2),
    ]
    assert all(p.rounds_bound == 4 and p.rounds_expected == 4 for p in rounds)
    assert all(p.left_s is not None for p in rounds)
    assert rounds[-1].left_s == 0.0
    assert rounds[-1].widest_ci is not None  # intervals after two blocks
    assert rounds[2].widest_ci is None  # none after one
    elapsed = [p.elapsed_s for p in reports]
    assert elapsed == sorted(elapsed)
    # The text lines are as they were: each set-up, then a line per block.
    assert [line.split("]")[0] for line in lines] == [
        *(f"[setup {done:>3}/{setups}" for done in range(1, setups + 1)),
        "[block  1/2",
        "[block 2",
        "[block  2/2",
    ]
