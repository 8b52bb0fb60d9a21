"""Accounts and tokens: register, log in, prove who you are."""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from pydantic import SecretStr, ValidationError
from sqlmodel import Session, select

from nogil_bench.auth import service as auth_service
from nogil_bench.auth.models import User
from nogil_bench.core import security
from nogil_bench.core.config import Settings
from nogil_bench.core.db import DatabaseBusyError, write
from nogil_bench.main import create_app
from tests.utils.api import Headers, register_and_login, synthetic_job

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"


def secret_of(settings: Settings) -> str:
    assert settings.SECRET_KEY is not None
    return settings.SECRET_KEY.get_secret_value()


def test_register_returns_the_public_user_and_never_the_hash(client: TestClient) -> None:
    response = client.post(
        REGISTER, json={"email": "Ada@Example.com", "password": "difference engine"}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert set(body) == {"id", "email", "created_at"}


def test_a_taken_email_is_409_whatever_its_case(client: TestClient) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})

    response = client.post(REGISTER, json={"email": "ADA@example.com", "password": "another one"})

    assert response.status_code == 409
    assert "ada@example.com" in response.json()["detail"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "at least 8 characters"), ("x" * 1025, "at most 1024 characters")],
)
def test_a_password_outside_the_bounds_is_refused_with_the_limit(
    client: TestClient, password: str, reason: str
) -> None:
    response = client.post(REGISTER, json={"email": "ada@example.com", "password": password})

    assert response.status_code == 422
    assert reason in response.text


@pytest.mark.parametrize(
    "password", ["x" * 73, "é" * 40, "x" * 1024], ids=["73-ascii", "40-accented", "1024-ascii"]
)
def test_a_password_past_bcrypts_72_bytes_registers_and_logs_in(
    client: TestClient, password: str
) -> None:
    headers = register_and_login(client, "ada@example.com", password)

    assert client.get(ME, headers=headers).status_code == 200


def test_a_malformed_email_is_422(client: TestClient) -> None:
    response = client.post(REGISTER, json={"email": "not-an-email", "password": "long enough"})

    assert response.status_code == 422


def test_login_with_the_password_form_gives_a_bearer_token_for_users_me(
    client: TestClient,
) -> None:
    headers = register_and_login(client, "ada@example.com")

    me = client.get(ME, headers=headers)

    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"


def test_the_token_is_hs256_with_sub_iat_and_exp(client: TestClient, settings: Settings) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    token = client.post(
        TOKEN, data={"username": "ada@example.com", "password": "difference engine"}
    )

    claims = jwt.decode(token.json()["access_token"], secret_of(settings), algorithms=["HS256"])

    assert token.json()["token_type"] == "bearer"
    assert set(claims) == {"sub", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60


@pytest.mark.parametrize(
    ("username", "password"),
    [("ada@example.com", "wrong password"), ("nobody@example.com", "difference engine")],
)
def test_wrong_credentials_are_401(client: TestClient, username: str, password: str) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})

    response = client.post(TOKEN, data={"username": username, "password": password})

    assert response.status_code == 401
    assert response.json()["detail"] == "wrong email or password"


def store_a_bcrypt_hash(client: TestClient, email: str, password: str) -> None:
    """Makes the account's hash a bcrypt one, as accounts made before Argon2 have: written as
    the service writes (core.db.write), in its writers' turn and retried while busy, so that
    the app's own writes at that moment (the executor's, say) do not fail the test."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    hashed = BcryptHasher(rounds=4).hash(password)

    def store(session: Session) -> None:
        user = session.exec(select(User).where(User.email == email)).one()
        user.hashed_password = hashed
        session.add(user)

    write(engine, store)


def stored_hash(client: TestClient, email: str) -> str:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        return session.exec(select(User.hashed_password).where(User.email == email)).one()


LONG_PASSWORDS = pytest.mark.parametrize(
    "password", ["x" * 73, "é" * 40, "x" * 5000], ids=["73-ascii", "40-accented", "5000-ascii"]
)


@LONG_PASSWORDS
@pytest.mark.parametrize("hasher", ["argon2", "bcrypt"])
def test_a_long_wrong_password_is_401_for_known_and_unknown_users(
    client: TestClient, password: str, hasher: str
) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    if hasher == "bcrypt":
        store_a_bcrypt_hash(client, "ada@example.com", "difference engine")

    known = client.post(TOKEN, data={"username": "ada@example.com", "password": password})
    unknown = client.post(TOKEN, data={"username": "nobody@example.com", "password": password})

    assert (known.status_code, known.json()) == (401, {"detail": "wrong email or password"})
    assert (unknown.status_code, unknown.json()) == (401, {"detail": "wrong email or password"})


@LONG_PASSWORDS
@pytest.mark.parametrize("username", ["ada@example.com", "nobody@example.com"])
def test_a_login_costs_one_full_verification_whoever_and_whatever_is_sent(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    username: str,
) -> None:
    """Equal work for a known and an unknown email, at any length: response times reveal
    neither who has an account nor how long their password is."""
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    verified: list[str] = []
    original = Argon2Hasher.verify

    def spy(self: Argon2Hasher, password: str | bytes, hash: str | bytes) -> bool:
        verified.append(str(hash))
        return original(self, password, hash)

    monkeypatch.setattr(Argon2Hasher, "verify", spy)

    client.post(TOKEN, data={"username": username, "password": password})

    cost = f"m={settings.ARGON2_MEMORY_KIB},t={settings.ARGON2_TIME_COST},p=1$"
    assert len(verified) == 1
    assert verified[0].startswith(f"$argon2id$v=19${cost}")  # a real hash, checked in full


def test_an_account_from_the_bcrypt_days_logs_in_and_is_rehashed_with_argon2(
    client: TestClient,
) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    store_a_bcrypt_hash(client, "ada@example.com", "difference engine")
    form = {"username": "ada@example.com", "password": "difference engine"}

    assert client.post(TOKEN, data=form).status_code == 200

    assert stored_hash(client, "ada@example.com").startswith("$argon2id$")
    assert client.post(TOKEN, data=form).status_code == 200
    wrong = client.post(TOKEN, data=form | {"password": "difference engines"})
    assert wrong.status_code == 401


def test_a_login_whose_rehash_meets_a_busy_database_stands_and_rehashes_later(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    store_a_bcrypt_hash(client, "ada@example.com", "difference engine")
    form = {"username": "ada@example.com", "password": "difference engine"}

    def busy(*args: Any, **kwargs: Any) -> None:
        raise DatabaseBusyError("database is locked")

    with monkeypatch.context() as patched:
        patched.setattr(auth_service, "write", busy)
        login = client.post(TOKEN, data=form)

    assert login.status_code == 200, login.text
    assert stored_hash(client, "ada@example.com").startswith("$2b$")
    assert client.post(TOKEN, data=form).status_code == 200
    assert stored_hash(client, "ada@example.com").startswith("$argon2id$")


def test_a_failed_login_keeps_the_bcrypt_hash(client: TestClient) -> None:
    client.post(REGISTER, json={"email": "ada@example.com", "password": "difference engine"})
    store_a_bcrypt_hash(client, "ada@example.com", "difference engine")

    form = {"username": "ada@example.com", "password": "analytical engine"}
    assert client.post(TOKEN, data=form).status_code == 401

    assert stored_hash(client, "ada@example.com").startswith("$2b$")


def test_registrations_from_one_address_are_limited_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"REGISTER_RATE_LIMIT": "2/minute"})
    with TestClient(create_app(limited)) as client:
        for name in ("ada", "bob"):
            body = {"email": f"{name}@example.com", "password": "difference engine"}
            assert client.post(REGISTER, json=body).status_code == 201

        third = client.post(REGISTER, json={"email": "cy@example.com", "password": "whatever1"})

        assert third.status_code == 429
        assert int(third.headers["Retry-After"]) >= 1
        assert "too many registrations: the limit is 2 per 1 minute" in third.json()["detail"]
        login = client.post(TOKEN, data={"username": "cy@example.com", "password": "whatever1"})
        assert login.status_code == 401  # the account was not created


def test_the_register_429_is_documented_with_retry_after(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"][REGISTER]["post"]["responses"]

    assert "Retry-After" in responses["429"]["headers"]


@pytest.mark.parametrize("url", [REGISTER, TOKEN])
def test_an_auth_body_over_16_kib_is_413_naming_the_limit(client: TestClient, url: str) -> None:
    response = client.post(
        url,
        content=b"x" * (16 * 1024 + 1),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 413
    assert "over this route's limit of 16384" in response.json()["detail"]


def forged(settings: Settings, user_id: str, **overrides: object) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + timedelta(minutes=5)}
    claims.update(overrides)
    return jwt.encode(claims, secret_of(settings), algorithm="HS256")


def user_id_of(client: TestClient, headers: Headers) -> str:
    user_id: str = client.get(ME, headers=headers).json()["id"]
    return user_id


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda settings, user_id: "", id="missing"),
        pytest.param(lambda settings, user_id: "not.a.jwt", id="garbage"),
        pytest.param(
            lambda settings, user_id: forged(
                settings, user_id, exp=datetime.now(UTC) - timedelta(seconds=1)
            ),
            id="expired",
        ),
        pytest.param(
            lambda settings, user_id: jwt.encode(
                {"sub": user_id, "iat": 0, "exp": 2**40}, "another secret" * 4, algorithm="HS256"
            ),
            id="forged",
        ),
        pytest.param(
            lambda settings, user_id: jwt.encode(
                {"sub": user_id, "iat": 0, "exp": 2**40}, None, algorithm="none"
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda settings, user_id: jwt.encode(
                {"sub": user_id}, secret_of(settings), algorithm="HS256"
            ),
            id="no-exp",
        ),
        pytest.param(lambda settings, user_id: forged(settings, str(uuid.uuid4())), id="no-user"),
    ],
)
# /users/me reads its user in a hop of its own (get_current_user); the lists read it in the
# page's hop (with_user; with_owner, for a page with no jobs): all refuse the same tokens.
@pytest.mark.parametrize("route", [ME, "/api/v1/jobs", "/api/v1/batches"])
def test_a_bad_token_is_401_with_www_authenticate_bearer(
    client: TestClient, alice: Headers, settings: Settings, make_token: object, route: str
) -> None:
    assert callable(make_token)
    token = make_token(settings, user_id_of(client, alice))

    response = client.get(route, headers={"Authorization": f"Bearer {token}"} if token else {})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


def test_a_deleted_users_token_lists_nothing_once_their_jobs_are_gone_with_them(
    client: TestClient, alice: Headers
) -> None:
    """A page of jobs proves its owner exists (auth.dependencies.with_owner) because deleting
    a user deletes their jobs in the same statement: the token then finds an empty page, and
    the user read behind it refuses the token."""
    assert client.post("/api/v1/jobs", headers=alice, json=synthetic_job()).status_code == 202
    assert client.get("/api/v1/jobs", headers=alice).json()["count"] == 1
    user_id = uuid.UUID(user_id_of(client, alice))

    write(
        client.app.state.engine,  # type: ignore[attr-defined]
        lambda session: session.delete(session.get_one(User, user_id)),
    )

    response = client.get("/api/v1/jobs", headers=alice)
    assert response.status_code == 401
    assert response.json()["detail"] == "the token's user no longer exists"


def test_a_token_signed_by_this_service_for_an_existing_user_is_accepted(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    token = forged(settings, user_id_of(client, alice))

    assert client.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("secret", [None, "changethis", "short-but-random"])
def test_production_refuses_to_start_without_a_real_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="NOGIL_BENCH_SECRET_KEY"):
        Settings(
            ENVIRONMENT="production",
            SECRET_KEY=SecretStr(secret) if secret else None,
            _env_file=None,  # type: ignore[call-arg]
        )


def test_production_accepts_a_long_random_secret() -> None:
    settings = Settings(
        ENVIRONMENT="production",
        SECRET_KEY=SecretStr("k" * 16 + uuid.uuid4().hex),
        _env_file=None,  # type: ignore[call-arg]
    )

    assert not settings.secret_generated


def test_development_generates_a_secret_when_none_is_set() -> None:
    first = Settings(_env_file=None)  # type: ignore[call-arg]
    second = Settings(_env_file=None)  # type: ignore[call-arg]

    assert first.secret_generated
    assert secret_of(first) != secret_of(second)
    assert len(secret_of(first)) >= 32


def test_tokens_do_not_carry_the_password_hash_or_email(
    client: TestClient, settings: Settings
) -> None:
    headers = register_and_login(client, "ada@example.com")
    token = headers["Authorization"].removeprefix("Bearer ")

    subject = security.read_token_subject(token, secret=secret_of(settings))
    payload = jwt.decode(token, options={"verify_signature": False})

    assert str(subject) == client.get(ME, headers=headers).json()["id"]
    assert set(payload) == {"sub", "iat", "exp"}
    # Checked against the email itself: a bare "ada" can turn up in the hex of a UUID.
    assert "ada@example.com" not in str(payload)
    assert "$argon2" not in str(payload)


def test_a_token_once_accepted_is_refused_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Verified tokens are remembered: the remembered answer must still see the clock.
    secret = "a-secret-for-this-test-only-" + uuid.uuid4().hex
    issued = datetime.now(UTC)
    user_id = uuid.uuid4()
    token = security.create_access_token(
        user_id, secret=secret, expires_in=timedelta(minutes=1), now=issued
    )
    assert security.read_token_subject(token, secret=secret) == user_id

    expiry = (issued + timedelta(minutes=1)).timestamp()
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: expiry))

    with pytest.raises(security.InvalidTokenError, match="expired"):
        security.read_token_subject(token, secret=secret)


def test_a_token_accepted_under_one_secret_is_refused_under_another() -> None:
    token = security.create_access_token(
        uuid.uuid4(), secret="the-first-secret-" + "x" * 32, expires_in=timedelta(minutes=1)
    )
    security.read_token_subject(token, secret="the-first-secret-" + "x" * 32)

    with pytest.raises(security.InvalidTokenError, match="not valid"):
        security.read_token_subject(token, secret="the-second-secret-" + "x" * 32)
