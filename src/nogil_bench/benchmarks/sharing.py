"""Share links: a benchmark's report, readable without logging in by whoever holds the link.

A link is a random token of TOKEN_BYTES from `secrets`; only its SHA-256 is stored, so the
database (or a copy of it) gives no link away, and the token is shown once, when it is made. A
token is looked up by an indexed equality on its hash alone, never compared itself, so an
answer's timing says nothing about how much of a guess was right. Revoking deletes the row:
a revoked token and one never made then take the same path to the same 404. Deleting a
benchmark deletes its links (the foreign key's ON DELETE CASCADE).
"""

import hashlib
import secrets
import uuid

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from nogil_bench.benchmarks.models import Benchmark, BenchmarkShare
from nogil_bench.core.db import newest_first, write
from nogil_bench.core.errors import NotFoundError

# 256 bits: far past guessing, even at any rate limit.
TOKEN_BYTES = 32
# The one answer for every token that reads nothing: unknown, revoked or malformed.
NO_SUCH_LINK = "no such shared benchmark; the link may have been revoked"


def token_sha256(token: str) -> str:
    """What is stored of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_share(*, engine: Engine, benchmark_id: uuid.UUID) -> tuple[BenchmarkShare, str]:
    """A new link to the benchmark: its row, and its token, which only this answer holds. 404
    when the benchmark was deleted meanwhile."""
    token = secrets.token_urlsafe(TOKEN_BYTES)

    def add(session: Session) -> BenchmarkShare:
        # Locked until the commit: a benchmark deleted meanwhile is a 404, not a foreign key
        # violation.
        if session.get(Benchmark, benchmark_id, with_for_update=True) is None:
            raise NotFoundError(f"no benchmark {benchmark_id}")
        share = BenchmarkShare(benchmark_id=benchmark_id, token_sha256=token_sha256(token))
        session.add(share)
        return share

    return write(engine, add), token


def list_shares(
    *, session: Session, benchmark_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[BenchmarkShare], int]:
    """The benchmark's live links, newest first, and how many there are."""
    query = select(BenchmarkShare).where(BenchmarkShare.benchmark_id == benchmark_id)
    return newest_first(session, query, BenchmarkShare, limit=limit, offset=offset)


def revoke_share(*, engine: Engine, benchmark_id: uuid.UUID, share_id: uuid.UUID) -> None:
    """Revoke one of the benchmark's links; 404 when it has no such live link."""

    def remove(session: Session) -> int:
        removed = session.connection().execute(
            delete(BenchmarkShare).where(
                col(BenchmarkShare.id) == share_id,
                col(BenchmarkShare.benchmark_id) == benchmark_id,
            )
        )
        return removed.rowcount

    if write(engine, remove) == 0:
        raise NotFoundError(f"no share link {share_id} for benchmark {benchmark_id}")


def revoke_shares(*, engine: Engine, benchmark_id: uuid.UUID) -> int:
    """Revoke every link to the benchmark; how many there were."""

    def remove(session: Session) -> int:
        removed = session.connection().execute(
            delete(BenchmarkShare).where(col(BenchmarkShare.benchmark_id) == benchmark_id)
        )
        return removed.rowcount

    return write(engine, remove)


def shared_benchmark(*, session: Session, token: str) -> Benchmark:
    """The benchmark a live link's token reads; NotFoundError, the same for every token that
    reads nothing, otherwise. Any string is hashed and looked up: a malformed token is not
    refused sooner, so it answers as an unknown one does."""
    query = (
        select(Benchmark)
        .join(BenchmarkShare, col(BenchmarkShare.benchmark_id) == col(Benchmark.id))
        .where(BenchmarkShare.token_sha256 == token_sha256(token))
    )
    benchmark = session.exec(query).first()
    if benchmark is None:
        raise NotFoundError(NO_SUCH_LINK)
    return benchmark
