"""What one benchmark configuration is: the workload, the runner and how to run it.

It crosses into the worker process as one JSON line, so it is plain data.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Not a runner: K independent sequential processes, each with a K-th of the work, started
# together. Nothing is shared, so no concurrency model can beat it on this host (the ceiling).
CEILING = "ceiling"


@dataclass(frozen=True, slots=True)
class FunctionTarget:
    """A function of the user's, named on the command line (never by a request to the
    service): `package.module:function` or `path/to/file.py:function`, called once per task.
    The tasks are what `tasks` (a reference of the same form, to a callable taking no
    arguments) returns, or the indices 0 .. count - 1."""

    function: str
    tasks: str | None = None
    count: int | None = None
    # Folders put first on the worker processes' PYTHONPATH (so every process and
    # subinterpreter they start finds the modules): a file's folder, or the caller's directory.
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    workload: str  # an installed workload's name, or a user function's reference
    runner: str
    workers: int
    warmups: int = 1
    # The installed workload's parameters, as JSON holds them (workloads.registry.parse_params).
    params: Mapping[str, Any] = field(default_factory=dict)
    function: FunctionTarget | None = None
    # One process of a ceiling: the part-th (from 0) of `parts` contiguous shares of the work.
    part: int = 0
    parts: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Config:
        function = document.get("function")
        return cls(
            **{key: value for key, value in document.items() if key != "function"},
            function=None
            if function is None
            else FunctionTarget(**{**function, "path": tuple(function.get("path", ()))}),
        )


def share(count: int, part: int, parts: int) -> range:
    """The part-th of `parts` contiguous shares of range(count), sizes differing by one at most;
    in order, the shares concatenate to range(count)."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts} does not exist")
    size, extra = divmod(count, parts)
    first = part * size + min(part, extra)
    return range(first, first + size + (1 if part < extra else 0))
