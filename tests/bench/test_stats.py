import pytest

from nogil_bench.bench.stats import (
    Summary,
    efficiency,
    karp_flatt,
    percentile,
    speedup,
    summarize,
)


def test_a_summary_gives_median_and_three_measures_of_spread() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])

    assert summary.median == 3.0
    assert summary.iqr == 2.0  # quartiles 2 and 4: the outlier barely moves it
    assert summary.mad == 1.0
    assert summary.stdev == pytest.approx(43.6176, rel=1e-4)
    assert summary.runs == 5


def test_a_large_spread_is_flagged_as_noisy_instead_of_trusted() -> None:
    assert summarize([1.0, 1.01, 0.99]).noisy is False
    assert summarize([1.0, 1.5, 0.7]).noisy is True


def test_one_run_has_no_spread() -> None:
    assert summarize([2.0]) == Summary(2.0, 0.0, 0.0, 0.0, 1)


def test_zero_runs_cannot_be_summarized() -> None:
    with pytest.raises(ValueError, match="zero runs"):
        summarize([])


def test_speedup_and_efficiency() -> None:
    assert speedup(4.0, 2.5) == 1.6
    assert efficiency(1.6, 2) == 0.8


@pytest.mark.parametrize(
    ("speedup_x", "workers", "serial_fraction"),
    [(2.0, 2, 0.0), (1.0, 2, 1.0), (1.6, 2, 0.25), (3.0, 4, 1 / 9)],
)
def test_karp_flatt_is_the_experimentally_determined_serial_fraction(
    speedup_x: float, workers: int, serial_fraction: float
) -> None:
    assert karp_flatt(speedup_x, workers) == pytest.approx(serial_fraction)


def test_karp_flatt_is_undefined_for_one_worker() -> None:
    assert karp_flatt(1.0, 1) is None


def test_percentiles_use_the_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]

    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 1) == 1.0
