"""Passwords (pwdlib + bcrypt) and access tokens (PyJWT, HS256)."""

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp")


@lru_cache
def password_hasher(rounds: int) -> PasswordHash:
    return PasswordHash((BcryptHasher(rounds=rounds),))


@lru_cache
def dummy_hash(rounds: int) -> str:
    """A real hash to verify against when the account does not exist, so a wrong email costs
    the same time as a wrong password and response times do not reveal who has an account."""
    return password_hasher(rounds).hash("not-a-real-password")


def hash_password(password: str, *, rounds: int) -> str:
    return password_hasher(rounds).hash(password)


def verify_password(password: str, password_hash: str | None, *, rounds: int) -> bool:
    return password_hasher(rounds).verify(password, password_hash or dummy_hash(rounds))


def create_access_token(
    subject: uuid.UUID, *, secret: str, expires_in: timedelta, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims = {"sub": str(subject), "iat": issued, "exp": issued + expires_in}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class InvalidTokenError(Exception):
    """The token is missing a claim, expired, forged, or not HS256; the message says which."""


def read_token_subject(token: str, *, secret: str) -> uuid.UUID:
    try:
        # An explicit algorithm list: "none" and algorithm-confusion tokens are refused.
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": list(REQUIRED_CLAIMS)}
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("the token has expired") from None
    except jwt.PyJWTError as error:
        raise InvalidTokenError(f"the token is not valid: {error}") from None
    try:
        return uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidTokenError("the token's subject is not a user id") from None
