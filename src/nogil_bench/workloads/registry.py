"""The one registry of workloads: every installed one, built-in or from another package, by
its entry point in `nogil_bench.workloads` (see workloads.plugin). The service runs only these,
by name: no request names a module to import."""

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from nogil_bench.plugins import Registry
from nogil_bench.workloads.plugin import ENTRY_POINT_GROUP, Workload


def check_workload(workload: Workload) -> None:
    """What every consumer of a workload relies on, checked once when it loads: parameters in a
    dataclass with a JSON schema, whose defaults and quick values are valid."""
    if not dataclasses.is_dataclass(workload.params):
        raise TypeError(f"its params must be a dataclass, not {workload.params!r}")
    adapter = _adapter(workload.params)
    adapter.json_schema()
    adapter.validate_python({})
    adapter.validate_python(dict(workload.quick))


WORKLOADS = Registry[Workload](ENTRY_POINT_GROUP, "workload", check=check_workload)


def workloads() -> Mapping[str, Workload]:
    """Every installed workload by name, built-ins first; loaded on first use."""
    return WORKLOADS.all()


class UnknownWorkloadError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown workload {name!r}; installed workloads: {', '.join(workloads())}"
        )


class InvalidParamsError(ValueError):
    """Parameters a workload does not take, or values outside what it takes; says which."""


def get_workload(name: str) -> Workload:
    try:
        return workloads()[name]
    except KeyError:
        raise UnknownWorkloadError(name) from None


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(params: type[Any]) -> TypeAdapter[Any]:
    """One validator per parameters class (building one takes a while)."""
    if (adapter := _adapters.get(params)) is None:
        adapter = _adapters.setdefault(params, TypeAdapter(params))
    return adapter


def parse_params(
    name: str, raw: Mapping[str, Any], *, quick: bool = False, strict: bool = False
) -> Any:
    """The workload's parameters from JSON-like values: its defaults, then its quick ones when
    `quick`, then `raw`. InvalidParamsError names an unknown parameter or a bad value. `strict`
    takes JSON's types only, as the API reads bodies: `true` or `"8"` is not a number."""
    workload = get_workload(name)
    known = {field.name for field in dataclasses.fields(workload.params)}
    if unknown := sorted(set(raw) - known):
        raise InvalidParamsError(
            f"workload {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(sorted(known)) or 'none'}"
        )
    merged = {**(workload.quick if quick else {}), **raw}
    adapter = _adapter(workload.params)
    try:
        if strict:
            # From JSON text: in strict mode a list is a tuple and an object a dataclass there.
            return adapter.validate_json(json.dumps(merged), strict=True)
        return adapter.validate_python(merged)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'params'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise InvalidParamsError(f"workload {name!r}: {problems}") from None


def params_to_json(name: str, params: Any) -> dict[str, Any]:
    """Parameters as JSON holds them: what parse_params reads back."""
    dumped: dict[str, Any] = _adapter(get_workload(name).params).dump_python(params, mode="json")
    return dumped


def params_schema(name: str) -> dict[str, Any]:
    """The JSON schema of the workload's parameters (GET /api/v1/workloads)."""
    return _adapter(get_workload(name).params).json_schema()
