import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, SQLModel

from nogil_bench.core.models import HexUuid, LongText, UTCDateTime, utc_now


class User(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid7, primary_key=True, sa_type=HexUuid)
    email: str = Field(unique=True, index=True, max_length=320)
    hashed_password: str = Field(sa_type=LongText)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    # Operators: granted by `nogil-bench users admin EMAIL`, never through the API.
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class UserRecord:
    """The user a request acts for, as its token's lookup read them: plain values, no ORM
    object (building one took two thirds of the lookup's CPU) and no password hash."""

    id: uuid.UUID
    email: str
    created_at: datetime
    is_admin: bool
