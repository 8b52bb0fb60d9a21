import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

MIN_PASSWORD_CHARS = 8
# Argon2 reads any length; a bound keeps the work of one request small.
MAX_PASSWORD_CHARS = 1024
# The register and token bodies: the longest password at 12 bytes a character (a 4-byte UTF-8
# character percent-encoded, or a JSON surrogate pair), an email, and room to spare.
MAX_BODY_BYTES = 16 * 1024


class UserCreate(BaseModel):
    email: EmailStr
    password: str = Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=f"{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters.",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    }


class UserPublic(BaseModel):
    id: uuid.UUID
    # Checked when it was registered; a str here, as email_validator costs ~100 us an answer.
    email: str = Field(json_schema_extra={"format": "email"})
    created_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
