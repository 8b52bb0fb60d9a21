"""The workload registry: every installed workload from its entry point, and a plugin that is
not a usable workload left out with a warning instead of breaking every listing (the API's
GET /workloads among them)."""

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pytest
from loguru import logger

from nogil_bench import plugins
from nogil_bench.plugins import Registry
from nogil_bench.workloads import registry
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.plugin import ENTRY_POINT_GROUP, FunctionWorkload, Workload


@dataclass(frozen=True)
class CallbackParams:
    # No JSON schema can describe a callable: the API could not publish these parameters.
    on_done: Callable[[], None] = print


@dataclass(frozen=True)
class Steps:
    steps: int = 10


def one_task(params: object) -> list[int]:
    return [10]


NO_SCHEMA = FunctionWorkload(fib, one_task, CallbackParams, "params without a JSON schema")
BAD_QUICK = FunctionWorkload(fib, one_task, Steps, "quick values of the wrong type", {"steps": "x"})
NOT_A_DATACLASS = FunctionWorkload(fib, one_task, dict, "params that are not a dataclass")


def listed_with(monkeypatch: pytest.MonkeyPatch, *names: str) -> tuple[list[str], list[str]]:
    """The registry's names with these plugins of this module installed, and its warnings."""
    installed = entry_points(group=ENTRY_POINT_GROUP)
    extra = [EntryPoint(name.lower(), f"{__name__}:{name}", ENTRY_POINT_GROUP) for name in names]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*installed, *extra])
    fresh = Registry[Workload](ENTRY_POINT_GROUP, "workload", check=registry.check_workload)
    monkeypatch.setattr(registry, "WORKLOADS", fresh)
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(message.record["message"]), level="WARNING")
    try:
        return list(registry.workloads()), warnings
    finally:
        logger.remove(sink)


def test_a_workload_whose_parameters_no_schema_describes_is_left_out_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names, warnings = listed_with(monkeypatch, "NO_SCHEMA", "BAD_QUICK", "NOT_A_DATACLASS")

    assert {"fib", "pure-python", "native", "small-batch", "images"} <= set(names)
    assert not {"no_schema", "bad_quick", "not_a_dataclass"} & set(names)
    assert len([warning for warning in warnings if "failed to load" in warning]) == 3
    assert any("'not_a_dataclass'" in warning and "dataclass" in warning for warning in warnings)


def test_every_installed_workload_publishes_a_schema_and_valid_defaults() -> None:
    for name in registry.workloads():
        schema = registry.params_schema(name)
        assert schema["type"] == "object", name
        defaults = registry.params_to_json(name, registry.parse_params(name, {}))
        assert set(defaults) == set(schema["properties"]), name
