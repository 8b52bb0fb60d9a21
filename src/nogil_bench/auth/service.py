import uuid
from dataclasses import fields
from datetime import timedelta

from loguru import logger
from sqlalchemy import Connection, Engine, bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from nogil_bench.auth.models import User, UserRecord
from nogil_bench.auth.schemas import UserCreate
from nogil_bench.core import security
from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.errors import ConflictError, ServiceUnavailableError


class EmailTakenError(ConflictError):
    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email!r} already exists")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def get_user_by_email(*, engine: Engine, email: str) -> User | None:
    with Session(engine) as session:
        return session.exec(select(User).where(User.email == normalize_email(email))).first()


# Every authenticated request reads its token's user: through SQLAlchemy Core, one cached
# statement and no ORM object, which takes ~50 us of CPU on 3.14t where `session.get` took
# ~160 us (scripts/bench_request_cpu.py; docs/serving.md, the request path).
_USERS = User.__table__  # type: ignore[attr-defined]
_USER_BY_ID = sa_select(*(_USERS.c[field.name] for field in fields(UserRecord))).where(
    _USERS.c.id == bindparam("user_id")
)


def read_user(connection: Connection, user_id: uuid.UUID) -> UserRecord | None:
    """The user with this id, or None."""
    row = connection.execute(_USER_BY_ID, {"user_id": user_id}).one_or_none()
    return None if row is None else UserRecord(**row._mapping)


def create_user(*, engine: Engine, user_create: UserCreate, settings: Settings) -> User:
    email = normalize_email(user_create.email)
    if get_user_by_email(engine=engine, email=email) is not None:
        raise EmailTakenError(email)
    # Hashing takes a while on purpose: outside any transaction.
    user = User(
        email=email, hashed_password=security.hash_password(user_create.password, settings=settings)
    )
    try:
        return write(engine, lambda session: add(session, user))
    except IntegrityError:  # another request registered the same email in between
        raise EmailTakenError(email) from None


def add[T: SQLModel](session: Session, row: T) -> T:
    session.add(row)
    return row


def authenticate(*, engine: Engine, email: str, password: str, settings: Settings) -> User | None:
    user = get_user_by_email(engine=engine, email=email)
    # Verified even when there is no user (against a dummy hash): equal time either way.
    valid, new_hash = security.verify_password(
        password, user.hashed_password if user else None, settings=settings
    )
    if user is None or not valid:
        return None
    if new_hash is not None:  # made by bcrypt or at another cost: replaced by today's hash
        rehash(engine=engine, user=user, new_hash=new_hash)
    return user


def rehash(*, engine: Engine, user: User, new_hash: str) -> None:
    """Stores `new_hash` in place of the hash `user` was verified against, unless it changed
    meanwhile. A busy database only postpones it to a later login: the login stands."""
    old_hash = user.hashed_password

    def replace(session: Session) -> None:
        session.execute(
            update(User)
            .where(col(User.id) == user.id, col(User.hashed_password) == old_hash)
            .values(hashed_password=new_hash)
        )

    try:
        write(engine, replace)
    except ServiceUnavailableError as error:
        logger.warning("the re-hash of user {} waits for a later login: {}", user.id, error)
        return
    user.hashed_password = new_hash


def issue_token(*, user_id: uuid.UUID, settings: Settings) -> str:
    assert settings.SECRET_KEY is not None  # Settings fills it in or refuses to start
    return security.create_access_token(
        user_id,
        secret=settings.SECRET_KEY.get_secret_value(),
        expires_in=timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES),
    )


def set_admin(*, engine: Engine, email: str, admin: bool) -> bool:
    """Makes the user with `email` an admin, or not; False when there is no such user."""

    def change(session: Session) -> bool:
        user = session.exec(select(User).where(User.email == normalize_email(email))).first()
        if user is None:
            return False
        user.is_admin = admin
        session.add(user)
        return True

    return write(engine, change)
