"""The concurrency runners, and the one registry that names them.

Every runner, built-in or from another package, registers as an entry point in the group
`nogil_bench.runners` (`[project.entry-points."nogil_bench.runners"]` in its pyproject.toml):
the registry lists that group and imports no runner by hand, so `runners/` needs nothing from
the packages that add runners (the Celery ones live in `distributed/`).
"""

import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

from nogil_bench.runners.base import BaseRunner, TaskFailedError, UnsupportedWorkError

ENTRY_POINT_GROUP = "nogil_bench.runners"

# Reentrant: a runner module that asked for the registry while loading fails loudly, not hangs.
_loading = threading.RLock()
_registry: Mapping[str, type[BaseRunner]] | None = None


def runners() -> Mapping[str, type[BaseRunner]]:
    """Every installed runner by name, in their `order`. Loaded on first use,
    not when this package is imported: loading an entry point imports its module, which may
    import this package back."""
    global _registry  # noqa: PLW0603 - the one cache, filled once
    if (registry := _registry) is not None:
        return registry
    with _loading:
        if _registry is None:
            found = {point.name: point.load() for point in entry_points(group=ENTRY_POINT_GROUP)}
            # By the runners' own order: installers list entry points in no order of ours.
            _registry = MappingProxyType(
                dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))
            )
        return _registry


def local_runners() -> tuple[str, ...]:
    """The runners that need nothing but this machine: what a benchmark compares when not told."""
    return tuple(name for name, runner in runners().items() if not runner.needs_broker)


class UnknownRunnerError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown runner {name!r}; valid runners: {', '.join(runners())}")


def get_runner(name: str) -> type[BaseRunner]:
    try:
        return runners()[name]
    except KeyError:
        raise UnknownRunnerError(name) from None


__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseRunner",
    "TaskFailedError",
    "UnknownRunnerError",
    "UnsupportedWorkError",
    "get_runner",
    "local_runners",
    "runners",
]
