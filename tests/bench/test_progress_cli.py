"""`nogil-bench measure`'s progress as a user sees it: on a terminal (here a pseudo-terminal),
one live bar with the rounds done of the bound and an estimate of the time left; in a pipe or a
log, the plain lines as before; with --quiet, neither. The tables on stdout are printed alike."""

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from typing import Any

from rich.console import Console

from nogil_bench.bench.progress import Progress
from nogil_bench.benchmarks.progress_bar import LiveBar, clock_time, describe, showing_progress
from tests.utils.live_server import NOGIL_BENCH
from tests.utils.measure_cli import MEASURE_TIMEOUT_S, ROWS_HEADER, measure

# fib(5) twice, sequential against 2 threads (and the ceiling), GIL off, no warm-up.
FIB = (
    "fib", "--param", "n=5", "--param", "tasks=2", "--runners", "threads", "--workers", "2",
    "--gil", "0", "--warmups", "0",
)  # fmt: skip
# One block of one round: each command's few seconds are mostly starting worker processes.
ONE_ROUND = ("--repeats", "1", "--max-repeats", "1", "--block-rounds", "1")
# Cursor moves, colours, show/hide cursor: what a terminal interprets, not text.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def on_a_terminal(*args: str) -> tuple[str, str]:
    """`nogil-bench measure ARGS` with stderr on a pseudo-terminal 160 columns wide (stdout in
    a pipe, as when the tables are redirected): what the terminal showed, without its escape
    sequences, and stdout."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        with subprocess.Popen(
            [str(NOGIL_BENCH), "measure", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            # The terminal's own size, whatever the test runner's environment says.
            env={k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
            | {"TERM": "xterm-256color"},
            text=True,
        ) as process:
            os.close(terminal)
            stdout, _ = process.communicate(timeout=MEASURE_TIMEOUT_S)
        assert process.returncode == 0, shown.decode(errors="replace")
    finally:
        reader.join(timeout=10)
        os.close(controller)
    return ESCAPES.sub("", shown.decode(errors="replace")), stdout


def test_on_a_terminal_one_live_bar_shows_rounds_of_the_bound_and_the_time_left() -> None:
    shown, stdout = on_a_terminal(*FIB, *ONE_ROUND)

    assert "rounds 1/1" in shown  # its last state stays on the terminal
    assert re.search(r"~\d+:\d\d left", shown), shown
    assert re.search(r"\d+:\d\d elapsed", shown), shown
    assert "target ±5.0%" in shown
    # The bar says what the plain lines would: they are not printed under it.
    assert "[setup" not in shown
    assert "[block" not in shown
    assert ROWS_HEADER in stdout


def test_quiet_shows_no_progress_even_on_a_terminal() -> None:
    shown, stdout = on_a_terminal(*FIB, *ONE_ROUND, "--quiet")

    assert "rounds" not in shown
    assert "[setup" not in shown
    assert "measuring" not in shown
    assert ROWS_HEADER in stdout


def test_without_a_terminal_the_plain_lines_remain() -> None:
    plain = measure(*FIB, *ONE_ROUND)

    assert plain.returncode == 0, plain.stderr
    lines = plain.stderr.splitlines()
    assert lines[0].startswith("measuring 3 configurations"), lines
    assert [line.split("]")[0] for line in lines[1:]] == [
        "[setup   1/3",
        "[setup   2/3",
        "[setup   3/3",
        "[block  1/1",
    ]
    assert "\x1b[" not in plain.stderr  # no bar drawn into a pipe
    assert ROWS_HEADER in plain.stdout


# What each way of showing does, in this process.


def test_quiet_shows_nothing_wherever_it_writes() -> None:
    stream = io.StringIO()
    with showing_progress(quiet=True, stream=stream) as shown:
        shown.line("[setup   1/3] fib sequential")

    assert shown.update is None
    assert stream.getvalue() == ""


def test_a_stream_that_is_no_terminal_gets_each_line_as_it_comes() -> None:
    stream = io.StringIO()
    with showing_progress(stream=stream) as shown:
        shown.line("[setup   1/3] fib sequential")
        shown.line("[block  1/2] 3 s: no intervals yet")

    assert shown.update is None  # nothing draws a bar
    assert stream.getvalue() == "[setup   1/3] fib sequential\n[block  1/2] 3 s: no intervals yet\n"


def rendered(progress: Progress, *, since_s: float = 0.0) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    with console.capture() as capture:
        console.print(*describe(progress, since_s=since_s))
    return " ".join(capture.get().split())


def progress(**overrides: Any) -> Progress:
    fields: dict[str, Any] = {
        "phase": "rounds",
        "setups_done": 3,
        "setups": 3,
        "rounds_done": 7,
        "rounds_bound": 30,
        "rounds_expected": 15,
        "blocks_done": 1,
        "block_rounds": 5,
        "elapsed_s": 75.0,
        "left_s": 130.0,
        "widest_ci": None,
        "target_ci": 0.05,
    }
    return Progress(**(fields | overrides))


def test_the_bar_reads_rounds_of_the_bound_elapsed_time_left_and_the_widest_interval() -> None:
    text = rendered(progress(widest_ci=0.0731))

    assert "block 2" in text
    assert "rounds 7/30 (~15 expected)" in text
    assert "1:15 elapsed" in text
    assert "~2:10 left" in text
    assert "widest CI ±7.3% (target ±5.0%)" in text


def test_between_reports_the_bar_ticks_on() -> None:
    text = rendered(progress(), since_s=10.0)

    assert "1:25 elapsed" in text
    assert "~2:00 left" in text


def test_while_setting_up_the_bar_counts_set_ups_and_waits_for_a_round_to_estimate() -> None:
    text = rendered(progress(phase="setup", setups_done=2, rounds_done=0, left_s=None))

    assert "set-up 2/3" in text
    assert "rounds 0/30" in text
    assert "time left: known after a round" in text
    assert "no CI yet (target ±5.0%)" in text


def test_times_read_as_a_clock() -> None:
    assert [clock_time(s) for s in (0.4, 59.6, 75, 3600, 3725.2)] == [
        "0:00",
        "1:00",
        "1:15",
        "1:00:00",
        "1:02:05",
    ]


def test_on_an_80_column_terminal_the_figures_stay_whole_and_the_bar_goes() -> None:
    bar = LiveBar(clock=lambda: 0.0, width=lambda: 80)
    bar.update(progress(widest_ci=0.0731))
    console = Console(file=io.StringIO(), width=80, color_system=None)
    with console.capture() as capture:
        console.print(bar.render())

    (line,) = capture.get().splitlines()
    assert "…" not in line
    assert "rounds 7/30 (~15 expected)" in line
    assert "~2:10 left" in line
    assert "widest CI ±7.3% (target ±5.0%)" in line
