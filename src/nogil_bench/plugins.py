"""The one way nogil-bench finds its runners and workloads: entry points, pytest's and pyperf's
convention. A package adds its own in its pyproject.toml:

    [project.entry-points."nogil_bench.workloads"]
    checksum = "mypkg.bench:checksum"

Built-in ones register the same way in nogil-bench's own pyproject.toml.
"""

import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

BUILT_IN_PREFIX = "nogil_bench."


class Registry[T]:
    """One entry-point group's objects by name, loaded on first use, not when the registry is
    made: loading an entry point imports its module, which may import the registry's back.

    A plugin that fails to load is left out with a warning (the service and every other plugin
    still work); a name taken already, built-ins first, keeps its first object: another package
    cannot replace `threads` by registering it again.
    """

    def __init__(
        self,
        group: str,
        kind: str,
        *,
        sort_key: Callable[[str, T], Any] | None = None,
        check: Callable[[T], None] | None = None,
    ) -> None:
        self.group = group
        self.kind = kind
        self.sort_key = sort_key
        # Raises when a loaded object is not one of this kind (say why): it is left out too.
        self.check = check
        # Reentrant: a plugin module that asks for the registry while loading fails loudly
        # (a KeyError on an empty listing) instead of hanging.
        self._loading = threading.RLock()
        self._loaded: Mapping[str, T] | None = None

    def all(self) -> Mapping[str, T]:
        if (loaded := self._loaded) is not None:
            return loaded
        with self._loading:
            if self._loaded is None:
                found = self._load()
                if (sort_key := self.sort_key) is not None:
                    found = dict(sorted(found.items(), key=lambda item: sort_key(*item)))
                self._loaded = MappingProxyType(found)
            return self._loaded

    def _load(self) -> dict[str, T]:
        points = sorted(
            entry_points(group=self.group),
            key=lambda point: not point.module.startswith(BUILT_IN_PREFIX),
        )
        found: dict[str, T] = {}
        # Imported only to warn: every benchmark worker process loads a registry, and loguru
        # (with asyncio) is a tenth of a second of each one's start.
        from loguru import logger  # noqa: PLC0415

        for point in points:
            if point.name in found:
                logger.warning(
                    "{} {!r} from {} is ignored: {} has that name",
                    self.kind,
                    point.name,
                    point.value,
                    found[point.name],
                )
                continue
            try:
                loaded = point.load()
                if self.check is not None:
                    self.check(loaded)
            except Exception as error:  # a plugin's bug: any error leaves that one out
                logger.warning(
                    "{} {!r} ({}) failed to load: {!r}", self.kind, point.name, point.value, error
                )
                continue
            found[point.name] = loaded
        return found
