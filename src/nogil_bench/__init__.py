"""nogil-bench: CPU-bound work under every concurrency model of free-threaded CPython 3.14."""

from importlib.metadata import version

from nogil_bench.core import sqlalchemy_memo

# Before anything imports SQLAlchemy: see core/sqlalchemy_memo.py.
sqlalchemy_memo.install()

__version__ = version("nogil-bench")
