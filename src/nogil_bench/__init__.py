"""nogil-bench: CPU-bound work under every concurrency model of free-threaded CPython 3.14."""

from importlib.metadata import version

__version__ = version("nogil-bench")
