"""The concurrency runners, and the one registry that names them.

Every runner, built-in or from another package, registers as an entry point in the group
`nogil_bench.runners` (`[project.entry-points."nogil_bench.runners"]` in its pyproject.toml):
the registry lists that group and imports no runner by hand, so `runners/` needs nothing from
the packages that add runners (the Celery ones live in `distributed/`).
"""

from collections.abc import Mapping

from nogil_bench.plugins import Registry
from nogil_bench.runners.base import BaseRunner, TaskFailedError, UnsupportedWorkError

ENTRY_POINT_GROUP = "nogil_bench.runners"

# By the runners' own order: installers list entry points in no order of ours.
RUNNERS = Registry[type[BaseRunner]](
    ENTRY_POINT_GROUP, "runner", sort_key=lambda name, runner: (runner.order, name)
)


def runners() -> Mapping[str, type[BaseRunner]]:
    """Every installed runner by name, in their `order`; loaded on first use (plugins.Registry)."""
    return RUNNERS.all()


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
    "RUNNERS",
    "BaseRunner",
    "TaskFailedError",
    "UnknownRunnerError",
    "UnsupportedWorkError",
    "get_runner",
    "local_runners",
    "runners",
]
