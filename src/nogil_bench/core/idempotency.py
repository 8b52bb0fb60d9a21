"""Idempotent submissions: the `Idempotency-Key` request header (IETF httpapi draft).

The first request with a key stores its answer in the same transaction as the work it created,
so either both exist or neither does. A later request from the same user with the same key and
the same content gets that first answer again (same ids, `Idempotent-Replayed: true`) and
creates nothing; the same key with other content is refused (422). Keys are forgotten after
IDEMPOTENCY_KEY_TTL_HOURS.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import JSON, Field, Session, SQLModel, col

from nogil_bench.core.db import write
from nogil_bench.core.errors import InvalidInputError
from nogil_bench.core.models import HexUuid, LongText, UTCDateTime, utc_now

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=MAX_KEY_CHARS + 2,  # a quoted key (a structured-field string) may be sent
        # Visible ASCII without '"', 1 to 255 characters, bare or quoted.
        pattern=r'^(?:"[!#-~]{1,255}"|[!#-~]{1,255})$',
        description="Any unique string (a UUID, say): a retry with the same key and body "
        "returns the first answer instead of queueing the work again.",
    ),
]


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"

    owner_id: uuid.UUID = Field(
        foreign_key="user.id", primary_key=True, ondelete="CASCADE", sa_type=HexUuid
    )
    key: str = Field(primary_key=True, max_length=MAX_KEY_CHARS)
    route: str = Field(sa_type=LongText)
    fingerprint: str = Field(
        sa_type=LongText, description="SHA-256 of the checked request content."
    )
    status_code: int
    response: dict[str, Any] = Field(sa_type=JSON)
    location: str = Field(sa_type=LongText)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


@dataclass(frozen=True, slots=True)
class Submission:
    """Who submits what where, and under which key (None: not idempotent)."""

    owner_id: uuid.UUID
    route: str  # the collection's path: the created item lives at route/id
    key: str | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What a submission answers: the created item's public body and where it lives."""

    body: dict[str, Any]
    location: str
    replayed: bool = False

    def response(self, status_code: int = 202) -> JSONResponse:
        headers = {"Location": self.location}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(self.body, status_code, headers=headers)


def fingerprint(content: Any) -> str:
    """A digest of the checked request content: equal for equal requests, whatever their
    formatting (key order, white space, multipart boundaries)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def normalize_key(header: str | None) -> str | None:
    return None if header is None else header.strip('"')


class KeyReusedError(InvalidInputError):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"the Idempotency-Key {key!r} was already used for a different request; send a new "
            "key for new work, or the same body to get the first answer again"
        )


def find_answer(engine: Engine, submission: Submission, now: datetime) -> Answer | None:
    """The stored first answer for this submission's key, if it has one that has not expired."""
    if submission.key is None:
        return None
    with Session(engine) as session:
        stored = session.get(IdempotencyKey, (submission.owner_id, submission.key))
    if stored is None or stored.expires_at <= now:
        return None
    if (stored.route, stored.fingerprint) != (submission.route, submission.fingerprint):
        raise KeyReusedError(submission.key)
    return Answer(stored.response, stored.location, replayed=True)


def submit_once(
    engine: Engine,
    submission: Submission,
    create: Callable[[Session], tuple[BaseModel, uuid.UUID]],
    *,
    ttl: timedelta,
) -> Answer:
    """Run `create` (it adds the rows and returns the public body and the new item's id) in one
    write transaction, storing the answer under the key in the same transaction; or return the
    answer an earlier request with the same key got."""
    if (earlier := find_answer(engine, submission, utc_now())) is not None:
        return earlier

    def create_and_remember(session: Session) -> Answer:
        body, created_id = create(session)
        answer = Answer(body.model_dump(mode="json"), f"{submission.route}/{created_id}")
        if submission.key is not None:
            now = utc_now()
            # An expired key may be reused: its old answer goes.
            session.execute(
                delete(IdempotencyKey).where(
                    col(IdempotencyKey.owner_id) == submission.owner_id,
                    col(IdempotencyKey.key) == submission.key,
                    col(IdempotencyKey.expires_at) <= now,
                )
            )
            session.add(
                IdempotencyKey(
                    owner_id=submission.owner_id,
                    key=submission.key,
                    route=submission.route,
                    fingerprint=submission.fingerprint,
                    status_code=202,
                    response=answer.body,
                    location=answer.location,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return answer

    try:
        return write(engine, create_and_remember)
    except IntegrityError:
        # The same key, sent again before the first request finished: the first one won.
        if (earlier := find_answer(engine, submission, utc_now())) is not None:
            return earlier
        raise


def forget_expired(session: Session, now: datetime) -> int:
    """Deletes expired keys; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) <= now))
    return int(getattr(result, "rowcount", 0) or 0)
