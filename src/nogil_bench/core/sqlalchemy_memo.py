"""Keeps SQLAlchemy from stopping every thread of the process on each new statement.

SQLAlchemy memoizes a statement's cache key (and a few other things) by storing a small closure
on the statement, named after the method: `memo.__name__ = fn.__name__; memo.__doc__ = ...`.
On free-threaded CPython 3.14, setting a function's `__name__`, `__qualname__` or `__doc__` is a
stop-the-world pause (CPython gh-153531, gh-154821: other threads may hold borrowed references
to those attributes). Each query builds new statements, so each request paused every thread,
the executor's image work included: measured here, two threads setting `__name__` in a loop
take about 200 us an iteration instead of 0.3 us, and authenticated reads ran at a fifth of
the liveness probe's rate with the CPU mostly idle.

The names are cosmetic, so the memoizing decorators are replaced by equal ones that skip
them. The decorators run when SQLAlchemy's modules are imported, so the replacement is made by
an import hook, the moment `sqlalchemy.util.langhelpers` has executed and before any module
uses it; `install()` must run before SQLAlchemy is first imported (nogil_bench/__init__ calls
it). `MemoizedSlots.__getattr__`, which builds such closures at call time, is replaced too.
"""

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from functools import update_wrapper
from types import ModuleType
from typing import Any

TARGET = "sqlalchemy.util.langhelpers"
PATCHED = "nogil_bench_patched"  # set on the module once patched


def memoized_instancemethod(fn: Callable[..., Any]) -> Callable[..., Any]:
    """SQLAlchemy's, less the renaming of the memo."""

    def oneshot(self: Any, *args: Any, **kw: Any) -> Any:
        result = fn(self, *args, **kw)

        def memo(*_: Any, **__: Any) -> Any:
            return result

        self.__dict__[fn.__name__] = memo
        return result

    return update_wrapper(oneshot, fn)  # at import, once per method: no pause that matters


def has_memoized_instancemethod(cls: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`HasMemoized.memoized_instancemethod`, less the renaming of the memo."""

    def oneshot(self: Any, *args: Any, **kw: Any) -> Any:
        result = fn(self, *args, **kw)

        def memo(*_: Any, **__: Any) -> Any:
            return result

        self.__dict__[fn.__name__] = memo
        self._memoized_keys |= {fn.__name__}
        return result

    return update_wrapper(oneshot, fn)


def memoized_slots_getattr(self: Any, key: str) -> Any:
    """`MemoizedSlots.__getattr__`, less the renaming of the memo."""
    if key.startswith(("_memoized_attr_", "_memoized_method_")):
        raise AttributeError(key)
    if hasattr(self.__class__, f"_memoized_attr_{key}"):
        value = getattr(self, f"_memoized_attr_{key}")()
        setattr(self, key, value)
        return value
    if hasattr(self.__class__, f"_memoized_method_{key}"):
        method = getattr(self, f"_memoized_method_{key}")

        def oneshot(*args: Any, **kw: Any) -> Any:
            result = method(*args, **kw)

            def memo(*_: Any, **__: Any) -> Any:
                return result

            setattr(self, key, memo)
            return result

        return oneshot
    return self._fallback_getattr(key)


def patch(langhelpers: ModuleType) -> None:
    setattr(langhelpers, "memoized_instancemethod", memoized_instancemethod)  # noqa: B010
    langhelpers.HasMemoized.memoized_instancemethod = classmethod(has_memoized_instancemethod)
    langhelpers.MemoizedSlots.__getattr__ = memoized_slots_getattr
    setattr(langhelpers, PATCHED, True)


class _PatchAfterExec(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterExec(spec.loader)
        return spec


def install() -> None:
    """Patches SQLAlchemy as it is imported. If it was imported already, only the call-time
    path can be patched; the import-time decorators keep their pauses."""
    if (langhelpers := sys.modules.get(TARGET)) is not None:
        if not getattr(langhelpers, PATCHED, False):
            langhelpers.MemoizedSlots.__getattr__ = memoized_slots_getattr
        return
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def installed() -> bool:
    """True when SQLAlchemy was imported with the patch in place."""
    langhelpers = sys.modules.get(TARGET)
    return bool(getattr(langhelpers, PATCHED, False))
