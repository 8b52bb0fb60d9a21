import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from nogil_bench.core.models import UTCDateTime, utc_now


class User(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid7, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=320)
    hashed_password: str
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
