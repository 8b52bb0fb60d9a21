import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Connection, Engine
from sqlmodel import Session

from nogil_bench.auth import service
from nogil_bench.auth.models import UserRecord
from nogil_bench.core import security
from nogil_bench.core.db import EngineDep
from nogil_bench.core.deps import settings_of
from nogil_bench.core.errors import ForbiddenError, NotAuthenticatedError
from nogil_bench.core.logging import request_fields
from nogil_bench.core.reads import READS

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a password


class BearerTokenSubject(OAuth2PasswordBearer):
    """OAuth2's password flow, as OpenAPI and Swagger UI show it, as a dependency that gives
    the id of the bearer token's user. The token is checked on the event loop (an HMAC of a
    few hundred bytes, microseconds): a bad one is refused without a hop to a thread. That the
    user still exists is for `user_in`, in the request's one hop (`with_user`, `with_owner`).

    One dependency, where FastAPI's tutorial has two (the scheme, and a function taking its
    token): FastAPI spends about 8 us solving each, on every authenticated request. For the
    same reason the settings come from the request, not from `SettingsDep`."""

    async def __call__(self, request: Request) -> uuid.UUID:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise NotAuthenticatedError("not authenticated: send 'Authorization: Bearer <token>'")
        settings = settings_of(request)
        assert settings.SECRET_KEY is not None
        try:
            return security.read_token_subject(token, secret=settings.SECRET_KEY.get_secret_value())
        except security.InvalidTokenError as error:
            raise NotAuthenticatedError(str(error)) from None


# auto_error=False: a missing token becomes our 401 with WWW-Authenticate, like a bad one.
# Named in OpenAPI as FastAPI names the class it extends, as clients have always seen it.
token_subject = BearerTokenSubject(
    tokenUrl=TOKEN_URL, auto_error=False, scheme_name="OAuth2PasswordBearer"
)

TokenSubject = Annotated[uuid.UUID, Depends(token_subject)]


def user_in(connection: Connection, user_id: uuid.UUID) -> UserRecord:
    """The token's user, read on the caller's connection; 401 if it no longer exists. Its id
    goes on the request's later log lines."""
    user = service.read_user(connection, user_id)
    if user is None:
        raise NotAuthenticatedError("the token's user no longer exists")
    _log_user(user.id)
    return user


def _log_user(user_id: uuid.UUID) -> None:
    if (fields := request_fields.get()) is not None:
        fields["user_id"] = str(user_id)


def with_user[T](engine: Engine, user_id: uuid.UUID, read: Callable[[Session, UserRecord], T]) -> T:
    """`read(session, user)` in a session of its own, the token's user read first in it (401
    if gone). Called in a route's one hop, it reads the user and what the route needs with
    one connection, in one transaction; the session closes with it, so no transaction stays
    open for the rest of the request (reading an upload, hashing a password, streaming)."""
    with Session(engine) as session:
        return read(session, user_in(session.connection(), user_id))


def with_owner[T](
    engine: Engine, user_id: uuid.UUID, read: Callable[[Connection], tuple[T, bool]]
) -> T:
    """`with_user` for a read of the token's user's own rows that needs no ORM:
    `read(connection)`, on a pooled connection, says whether it found any. A row found proves
    its owner exists: each owned table's foreign key to its owner is enforced on every store
    (SQLite's too, `PRAGMA foreign_keys`), and deleting a user deletes their rows (`ON DELETE
    CASCADE`). So the user is read (401 if gone) only when the read found none, in the same
    transaction: a list that finds rows skips a statement. The service never deletes a user
    otherwise; an operator who does must do it with foreign keys enforced (docs/database.md),
    or the user's rows would outlive them, listed by their token until it expires."""
    with engine.connect() as connection:
        result, found = read(connection)
        if found:
            _log_user(user_id)
        else:
            user_in(connection, user_id)
        return result


def load_user(engine: Engine, user_id: uuid.UUID) -> UserRecord:
    """The token's user alone: one statement on a pooled connection, no session."""
    with engine.connect() as connection:
        return user_in(connection, user_id)


async def get_current_user(engine: EngineDep, user_id: TokenSubject) -> UserRecord:
    """Async, so a request pays one hop for its user (the lookup, on a read thread), not two.
    A route that reads the database anyway takes `TokenSubject` and calls `with_user` in its
    own hop instead: one hop and one connection for both."""
    return await READS.run(load_user, engine, user_id)


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> UserRecord:
    """The current user, if an operator made them an admin (`nogil-bench users admin`)."""
    if not user.is_admin:
        raise ForbiddenError("admins only: an operator grants it with `nogil-bench users admin`")
    return user


AdminUser = Annotated[UserRecord, Depends(get_admin_user)]
