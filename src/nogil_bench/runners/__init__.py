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

from loguru import logger

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
            found = _load_entry_points()
            # By the runners' own order: installers list entry points in no order of ours.
            _registry = MappingProxyType(
                dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))
            )
        return _registry


def _load_entry_points() -> dict[str, type[BaseRunner]]:
    """Each runner of the group by name. One that fails to load is left out with a warning (the
    service and every other runner still work); a name taken already, built-ins first, keeps
    its first runner: another package cannot replace `threads` by registering it again."""
    points = sorted(
        entry_points(group=ENTRY_POINT_GROUP),
        key=lambda point: not point.module.startswith("nogil_bench."),
    )
    found: dict[str, type[BaseRunner]] = {}
    for point in points:
        if point.name in found:
            logger.warning(
                "runner {!r} from {} is ignored: {} has that name",
                point.name,
                point.value,
                found[point.name].__qualname__,
            )
            continue
        try:
            found[point.name] = point.load()
        except Exception as error:  # a plugin's bug: any import error leaves that runner out
            logger.warning("runner {!r} ({}) failed to load: {!r}", point.name, point.value, error)
    return found


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
