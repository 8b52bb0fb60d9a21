"""scripts/bench_request_path.py's options and tables, on fixed figures (no server runs here)."""

import sys
from pathlib import Path

import pytest

from nogil_bench.serving import default_server

SCRIPTS = str(Path(__file__).parents[1] / "scripts")
SRC = Path(__file__).parents[1] / "src"
sys.path.insert(0, SCRIPTS)  # the script imports its siblings (bench_serve, live_server)
try:
    import bench_request_path as brp
    from bench_serve import Run, ratio_ci
finally:
    sys.path.remove(SCRIPTS)


def test_without_before_the_service_is_measured_against_its_stacks_floor_only() -> None:
    options = brp.parse_args(["--rounds", "3"])
    assert options.before_src is None
    assert [app.name for app in options.apps] == ["service", "reference"]
    assert [target.name for target in options.targets] == [
        "/health/live vs bare /live",
        "/users/me vs bare /live",
        "/jobs vs bare /live",
        "/users/me vs bare /me",
    ]


def test_before_adds_the_other_source_as_an_app_and_each_endpoint_against_it() -> None:
    options = brp.parse_args(["--rounds", "3", "--before", str(SRC)])
    assert options.before_src == SRC.resolve()
    assert [app.name for app in options.apps] == ["service", "before", "reference"]
    assert [endpoint.path for endpoint in brp.BEFORE.endpoints] == [
        endpoint.path for endpoint in brp.SERVICE.endpoints
    ]
    changes = [target for target in options.targets if target.reference.startswith("before ")]
    assert [(t.endpoint, t.reference, t.at_least) for t in changes] == [
        ("/health/live", "before /health/live", None),
        ("/users/me", "before /users/me", None),
        ("/jobs", "before /jobs", None),
    ]


def test_before_must_name_a_source_directory_with_the_package(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        brp.parse_args(["--before", str(tmp_path)])


def test_the_report_gives_the_change_paired_by_round() -> None:
    options = brp.parse_args(["--rounds", "2", "--before", str(SRC)])
    results = brp.Results(config={}, environment={"python": "3.14t", "cpus": 2, "database": "x"})
    for round_index, (now, then) in enumerate([(1100.0, 1000.0), (2200.0, 2000.0)]):
        for name, rate in (("/users/me", now), ("before /users/me", then)):
            ok = round(rate * 5)
            run = Run(ok, ok, 5.0, 0, 0, 1.0, 2.0)
            results.runs.setdefault(name, {})[round_index] = run
    target = next(t for t in options.targets if t.name == "/users/me vs before")
    results.ratios[target.name] = ratio_ci(
        results.rates(target.reference), results.rates(target.endpoint)
    )
    report = brp.report(results, options)
    assert "| before | `/api/v1/users/me` |" in report
    # Both rounds 1.10x: no spread, so the interval is the point.
    assert "| /users/me vs before | 1.10 [1.10, 1.10] | - | - |" in report


def test_every_app_is_served_by_serves_default_server_unless_another_is_named() -> None:
    default = brp.parse_args([])
    assert (default.server, default.reference_server) == (default_server(reload=False),) * 2
    named = brp.parse_args(["--server", "uvicorn"])
    assert (named.server, named.reference_server) == ("uvicorn", "uvicorn")
    floor = brp.parse_args(["--server", "granian", "--reference-server", "uvicorn"])
    assert (floor.server, floor.reference_server) == ("granian", "uvicorn")
