"""Traps of free-threaded 3.14 the service steers around: nothing on its hot paths may set a
function's `__name__` or `__doc__`, a stop-the-world pause (core/sqlalchemy_memo.py)."""

import sqlalchemy as sa

from nogil_bench.core import sqlalchemy_memo
from nogil_bench.main import create_app
from tests.utils.api import served_dependants


def test_sqlalchemy_was_imported_with_the_memo_patch() -> None:
    assert sqlalchemy_memo.installed()


def test_a_statements_memo_is_not_renamed() -> None:
    statement = sa.select(sa.literal(1))

    assert statement._generate_cache_key() is not None
    memo = statement.__dict__["_generate_cache_key"]
    # SQLAlchemy's own decorator renames it to "_generate_cache_key", pausing every thread.
    assert memo.__name__ == "memo"
    assert statement._generate_cache_key() is statement._generate_cache_key()


def test_memoized_slots_build_their_memo_without_renaming_it() -> None:
    metadata = sa.MetaData()
    table = sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True))
    compiled = sa.select(table).compile()

    assert compiled.string.startswith("SELECT")
    assert sa.util.langhelpers.MemoizedSlots.__getattr__ is sqlalchemy_memo.memoized_slots_getattr


def test_no_route_depends_on_a_generator_dependency() -> None:
    """FastAPI wraps generator dependencies in contextlib.contextmanager on every request."""

    def generators(dependant: object) -> list[str]:
        found = []
        for sub in getattr(dependant, "dependencies", []):
            call = sub.call
            code = getattr(call, "__code__", None)
            if code is not None and code.co_flags & 0x20 | code.co_flags & 0x200:  # generators
                found.append(call.__qualname__)
            found += generators(sub)
        return found

    dependants = served_dependants(create_app())
    assert len(dependants) > 30
    assert [name for dependant in dependants for name in generators(dependant)] == []
