import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field

MIN_PASSWORD_CHARS = 8
# bcrypt reads only the first 72 bytes; longer passwords would be silently truncated.
MAX_PASSWORD_BYTES = 72


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"the password is {len(password.encode())} bytes in UTF-8; bcrypt reads at most "
            f"{MAX_PASSWORD_BYTES}, so longer passwords are refused rather than truncated"
        )
    return password


type Password = Annotated[str, AfterValidator(_check_password)]


class UserCreate(BaseModel):
    email: EmailStr
    password: Password = Field(
        description=f"{MIN_PASSWORD_CHARS} characters to {MAX_PASSWORD_BYTES} bytes (UTF-8).",
        # Documented only: the checks above give the messages (a byte limit has no JSON Schema).
        json_schema_extra={"minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_BYTES},
    )

    model_config = {
        "json_schema_extra": {
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    }


class UserPublic(BaseModel):
    id: uuid.UUID
    email: EmailStr
    created_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
