"""A user's function and its tasks, from references such as `mypkg.parse:parse_one` or
`path/to/file.py:parse_one`: imported only in the worker processes that measure it."""

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nogil_bench.bench.config import FunctionTarget
from nogil_bench.workloads.plugin import Work, function_work


class TargetError(ValueError):
    """A reference that does not name a callable, or tasks that cannot be made; says why."""


def split_reference(reference: str) -> tuple[str, str, Path | None]:
    """(module name, attribute path, the file's folder or None) of `module:attr` or
    `file.py:attr`; TargetError when it is neither."""
    where, colon, attribute = reference.rpartition(":")
    if not colon or not where or not attribute:
        raise TargetError(
            f"{reference!r}: expected package.module:function or path/to/file.py:function"
        )
    if where.endswith(".py") or "/" in where:
        file = Path(where)
        if file.suffix != ".py":
            raise TargetError(f"{reference!r}: {where} is not a .py file")
        if not file.is_file():
            raise TargetError(f"{reference!r}: no such file {where}")
        return file.stem, attribute, file.resolve().parent
    if not all(part.isidentifier() for part in where.split(".")):
        raise TargetError(f"{reference!r}: {where!r} is not a module name")
    return where, attribute, None


def make_target(
    function: str, *, tasks: str | None, count: int | None, cwd: Path
) -> FunctionTarget:
    """The target as the command line gives it, checked without importing anything: files
    exist, references have their form, exactly one of tasks and count."""
    if (tasks is None) == (count is None):
        raise TargetError("give the tasks with --tasks module:callable or --count N, not both")
    if count is not None and count < 1:
        raise TargetError(f"--count must be at least 1, got {count}")
    folders = [
        folder
        for reference in (function, tasks)
        if reference is not None
        for folder in [split_reference(reference)[2] or cwd.resolve()]
    ]
    return FunctionTarget(function, tasks, count, tuple(dict.fromkeys(map(str, folders))))


def resolve(reference: str) -> Any:
    """The object a reference names, importing its module (in a worker process)."""
    module_name, attribute, _ = split_reference(reference)
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise TargetError(f"{reference!r}: cannot import {module_name}: {error}") from error
    for name in attribute.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise TargetError(f"{reference!r}: {module_name} has no {attribute!r}") from None
    return found


def load(target: FunctionTarget) -> Work:
    function = resolve(target.function)
    if not callable(function):
        raise TargetError(f"{target.function!r} is not callable")
    tasks: Sequence[Any]
    if target.tasks is not None:
        make_tasks: Callable[[], Sequence[Any]] = resolve(target.tasks)
        if not callable(make_tasks):
            raise TargetError(f"{target.tasks!r} is not callable")
        try:
            tasks = list(make_tasks())
        except Exception as error:
            raise TargetError(f"{target.tasks}() raised {type(error).__name__}: {error}") from error
        if not tasks:
            raise TargetError(f"{target.tasks}() returned no tasks")
        source = f"{len(tasks)} tasks from {target.tasks}()"
    else:
        assert target.count is not None
        tasks = range(target.count)
        source = f"{target.count} calls with the task's index"
    return function_work(function, tasks, source)
