"""scripts/bench_request_cpu.py's driver and options (the measurement itself is not run here)."""

import asyncio
import sys
from pathlib import Path

import pytest

SCRIPTS = str(Path(__file__).parents[1] / "scripts")
sys.path.insert(0, SCRIPTS)
try:
    import bench_request_cpu as brc
finally:
    sys.path.remove(SCRIPTS)


def test_the_driver_calls_an_app_through_asgi_and_returns_its_status_and_body() -> None:
    app = brc.bare_app()
    assert asyncio.run(brc.call(app, "GET", "/live")) == (200, b'{"status":"alive"}')
    status, _ = asyncio.run(brc.call(app, "GET", "/nowhere?x=1"))
    assert status == 404


def test_cpu_per_request_counts_only_the_measured_requests_and_fails_on_a_non_200() -> None:
    app = brc.bare_app()
    figure = asyncio.run(brc.cpu_per_request_us(lambda: brc.call(app, "GET", "/live"), 40, 4))
    assert figure > 0
    with pytest.raises(AssertionError):
        asyncio.run(brc.cpu_per_request_us(lambda: brc.call(app, "GET", "/nowhere"), 40, 4))


def test_options_default_to_info_and_refuse_what_cannot_be_measured() -> None:
    args = brc.parse_args([])
    assert (args.log_level, args.requests, args.concurrency, args.repeats) == ("INFO", 4000, 8, 3)
    assert brc.parse_args(["--log-level", "warning"]).log_level == "WARNING"
    assert brc.parse_args([]).read_threads is None  # the service's own default
    assert brc.parse_args(["--read-threads", "4"]).read_threads == 4
    for bad in (
        ["--requests", "0"],
        ["--repeats", "0"],
        ["--requests", "4", "--concurrency", "8"],
        ["--read-threads", "0"],
    ):
        with pytest.raises(SystemExit):
            brc.parse_args(bad)
