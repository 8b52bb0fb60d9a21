"""Passwords (pwdlib: Argon2id, and bcrypt for hashes made before it) and access tokens (PyJWT,
HS256)."""

import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from nogil_bench.core.config import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp")
# bcrypt reads at most 72 bytes (bcrypt 5 raises past them), so no bcrypt account has a longer one.
BCRYPT_MAX_PASSWORD_BYTES = 72


class LegacyBcryptHasher(BcryptHasher):
    """Verifies the bcrypt hashes of accounts made before Argon2; never makes new ones."""

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        encoded = password.encode() if isinstance(password, str) else password
        if len(encoded) <= BCRYPT_MAX_PASSWORD_BYTES:
            return super().verify(encoded, hash)
        # Wrong by length, after a verification of the usual cost: the answer's time says nothing.
        super().verify(encoded[:BCRYPT_MAX_PASSWORD_BYTES], hash)
        return False


@lru_cache
def _password_hasher(argon2_time_cost: int, argon2_memory_kib: int) -> PasswordHash:
    # The first hasher makes every new hash; verify_and_update replaces the others' on login.
    argon2 = Argon2Hasher(time_cost=argon2_time_cost, memory_cost=argon2_memory_kib, parallelism=1)
    return PasswordHash((argon2, LegacyBcryptHasher()))


def password_hasher(settings: Settings) -> PasswordHash:
    return _password_hasher(settings.ARGON2_TIME_COST, settings.ARGON2_MEMORY_KIB)


@lru_cache
def _dummy_hash(hasher: PasswordHash) -> str:
    return hasher.hash("not-a-real-password")


def hash_password(password: str, *, settings: Settings) -> str:
    return password_hasher(settings).hash(password)


def verify_password(
    password: str, password_hash: str | None, *, settings: Settings
) -> tuple[bool, str | None]:
    """Whether the password matches, and the hash to store instead when it was made by an older
    hasher or cost. Without a hash (no such account) a dummy one is verified, so a wrong email
    costs the same time as a wrong password and response times do not reveal who has an account."""
    hasher = password_hasher(settings)
    if password_hash is None:
        hasher.verify(password, _dummy_hash(hasher))
        return False, None
    return hasher.verify_and_update(password, password_hash)


def create_access_token(
    subject: uuid.UUID, *, secret: str, expires_in: timedelta, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims = {"sub": str(subject), "iat": issued, "exp": issued + expires_in}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class InvalidTokenError(Exception):
    """The token is missing a claim, expired, forged, or not HS256; the message says which."""


# Tokens that passed every check, by (token, secret): a client sends the same token on each
# request, and PyJWT's decode costs ~23 us of the event loop's CPU each time where a hit costs
# ~1 us. Only the expiry can change a verified token's answer, so a hit checks it again; a
# failure is never kept (lru_cache keeps no exceptions). At most this many: ~1 MB.
VERIFIED_TOKENS_KEPT = 4096


def read_token_subject(token: str, *, secret: str) -> uuid.UUID:
    subject, expires_at = _verified_token(token, secret)
    # PyJWT's own rule (no leeway): expired once the clock reaches `exp`.
    if expires_at <= time.time():
        raise InvalidTokenError("the token has expired")
    return subject


@lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified_token(token: str, secret: str) -> tuple[uuid.UUID, float]:
    """The subject and expiry (Unix seconds) of a token whose signature and claims check."""
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
        return uuid.UUID(str(claims["sub"])), float(claims["exp"])
    except ValueError:
        raise InvalidTokenError("the token's subject is not a user id") from None
