"""Rows with fixed wall times, for specifying what the engine derives from them."""

from nogil_bench.bench.results import Row, RunRecord


def row(
    runner: str,
    workers: int,
    walls: list[float],
    *,
    gil: int = 0,
    workload: str = "pure-python",
    python: str = "3.14.7t",
    digest: str = "same",
    steal: float | None = 0.0,
    blocks: list[int] | None = None,
) -> Row:
    """Runs in blocks of three rounds unless `blocks` labels each run's block."""
    labels = blocks if blocks is not None else [index // 3 for index in range(len(walls))]
    return Row(
        workload=workload,
        runner=runner,
        workers=workers,
        gil=gil,
        python=python,
        python_path=f"/opt/python{python}",
        setup_s=0.01,
        teardown_s=0.0,
        peak_rss_bytes=50 * 1024 * 1024,
        output_digest=digest,
        warmups_s=[walls[0]],
        runs=[
            RunRecord(wall, wall, 0.0, 0, 0, wall / 4, wall / 4, steal, block=block)
            for wall, block in zip(walls, labels, strict=True)
        ],
        environment={"free_threaded": python.endswith("t"), "gil_enabled": bool(gil)},
    )
