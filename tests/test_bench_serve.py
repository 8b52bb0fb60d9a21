"""scripts/bench_serve.py's pure parts: its options, its statistics and its tables, on fixed
figures (no server runs here)."""

import math
import sys
from pathlib import Path

import pytest

SCRIPTS = str(Path(__file__).parents[1] / "scripts")
sys.path.insert(0, SCRIPTS)  # the script imports its siblings (live_server, load_api)
try:
    import bench_serve as bs
finally:
    sys.path.remove(SCRIPTS)


def run_at(rate: float, p99_ms: float, non_2xx: int = 0) -> bs.Run:
    """A 5-second run with `rate` 2xx answers per second."""
    ok = round(rate * 5)
    return bs.Run(ok + non_2xx, ok, 5.0, non_2xx, 0, p99_ms / 2, p99_ms)


def test_options_statistics_and_tables() -> None:
    # Options: modes x GIL, GIL-major, the baseline first; bad values are refused.
    options = bs.parse_args(
        ["--rounds", "4", "--modes", "uvicorn,granian:2", "--gil", "0,1", "--tool", "python"]
    )
    assert [mode.label for mode in options.modes] == [
        "uvicorn w1 GIL0",
        "granian w2 GIL0",
        "uvicorn w1 GIL1",
        "granian w2 GIL1",
    ]
    assert (options.rounds, options.duration_s, options.connections) == (4, 5, 50)
    assert options.baseline == bs.Mode("uvicorn", 1, 0)
    assert options.json_path is None
    assert options.markdown_path is None
    assert bs.parse_shapes("gunicorn, uvicorn") == [
        ("gunicorn", 1),
        ("gunicorn", 2),
        ("uvicorn", 1),
    ]
    for bad in (["--modes", "uvicorn:2"], ["--modes", "nginx"], ["--modes", "gunicorn:0"],
                ["--gil", "2"], ["--rounds", "0"]):  # fmt: skip
        with pytest.raises(SystemExit):
            bs.parse_args(bad)
    assert bs.rotated(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert bs.rotated(["a", "b", "c"], 3) == ["a", "b", "c"]

    # Statistics: a mean with Student's t (2 degrees of freedom: t = 4.303), and a ratio
    # paired by round, as a geometric mean with a t interval on the logs.
    estimate = bs.mean_ci([100.0, 110.0, 120.0])
    assert estimate is not None
    assert estimate.mean == 110.0
    assert estimate.half_width == pytest.approx(4.3027 * 10 / math.sqrt(3), rel=1e-4)
    assert bs.mean_ci([5.0]) == bs.Estimate(5.0, None, 1)
    faster = bs.ratio_ci({0: 100.0, 1: 100.0, 2: 100.0}, {0: 200.0, 1: 220.0, 2: 180.0, 3: 1.0})
    assert faster is not None
    assert faster.n == 3
    assert faster.ratio == pytest.approx((2.0 * 2.2 * 1.8) ** (1 / 3))
    assert faster.verdict == "faster"
    assert faster.text.startswith("faster by 99%")
    unclear = bs.ratio_ci({0: 100.0, 1: 100.0}, {0: 90.0, 1: 120.0})
    assert unclear is not None
    assert unclear.verdict == "no significant difference"

    # Tables: each figure with its interval, a mode that could not start, the ratios, and
    # threads against processes.
    uvicorn, granian, gunicorn = (
        bs.Mode("uvicorn", 1, 0),
        bs.Mode("granian", 1, 0),
        bs.Mode("gunicorn", 1, 1),
    )
    refused = bs.Mode("granian", 1, 1)
    slots = []
    for round_index, (base, threads, processes) in enumerate([(100, 150, 90), (110, 160, 100)]):
        for mode, rate in ((uvicorn, base), (granian, threads), (gunicorn, processes)):
            slot = bs.Slot(mode, round_index, peak_rss_bytes=200 * bs.MIB, pss_bytes=100 * bs.MIB)
            slot.runs = {name: run_at(rate, 20.0) for name in ("/users/me", "/jobs", "submit")}
            slots.append(slot)
    slots[0].runs["submit"] = run_at(100, 20.0, non_2xx=3)
    modes = [uvicorn, granian, gunicorn, refused]
    rows = bs.summarize(modes, slots, {refused: "exit status 1: Granian refuses the GIL"})
    assert [row.rounds for row in rows] == [2, 2, 2, 0]
    assert rows[0].non_2xx == 3
    assert rows[0].peak_rss_bytes == 200 * bs.MIB
    table = bs.markdown_tables(rows, uvicorn, bs.duels(rows, slots))
    lines = table.splitlines()
    assert lines[0].startswith("| mode | GIL | workers | `/users/me` req/s | `/users/me` p99 ms")
    # 105 ± t(1) x 7.07 / sqrt(2) = 105 ± 63.5 requests/s; p99 20.0 ± 0.0 ms.
    assert "| uvicorn | 0 | 1 | 105 ± 64 | 20.0 ± 0.0 |" in table
    assert "| 200 MB | 100 MB | 3 / 0 |" in table
    assert "| granian | 1 | 1 | not available: exit status 1: Granian refuses the GIL |" in table
    assert all(line.count("|") == lines[0].count("|") for line in lines[:6])
    assert "| granian | 0 | 1 | faster by 48%" in table
    assert "| 1 | 1 | no significant difference" not in table  # threads beat processes 1.6x
    assert "| 1 | 1 | faster by 63%" in table
    assert table.rstrip().endswith("| 1.00 |")
