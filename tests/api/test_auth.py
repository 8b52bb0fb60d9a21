"""Accounts and tokens: register, log in, prove who you are."""

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pydantic import SecretStr, ValidationError

from nogil_bench.core import security
from nogil_bench.core.config import Settings
from tests.api.conftest import Headers, register_and_login

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
    [
        ("short", "at least 8 characters"),
        ("x" * 73, "bcrypt reads at most 72"),
        ("é" * 37, "74 bytes"),  # 37 characters, but 74 bytes in UTF-8
    ],
)
def test_a_password_outside_bcrypts_bounds_is_refused_with_the_reason(
    client: TestClient, password: str, reason: str
) -> None:
    response = client.post(REGISTER, json={"email": "ada@example.com", "password": password})

    assert response.status_code == 422
    assert reason in response.text


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


def test_an_unknown_email_costs_a_bcrypt_verification_like_a_wrong_password(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    original = PasswordHash.verify

    def spy(self: PasswordHash, password: str, hash: str) -> bool:
        verified.append(hash)
        return original(self, password, hash)

    monkeypatch.setattr(PasswordHash, "verify", spy)

    client.post(TOKEN, data={"username": "nobody@example.com", "password": "whatever1"})

    assert len(verified) == 1
    assert verified[0].startswith("$2b$")  # a real bcrypt hash, checked in full


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
def test_a_bad_token_is_401_with_www_authenticate_bearer(
    client: TestClient, alice: Headers, settings: Settings, make_token: object
) -> None:
    assert callable(make_token)
    token = make_token(settings, user_id_of(client, alice))

    response = client.get(ME, headers={"Authorization": f"Bearer {token}"} if token else {})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


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
    assert "$2b$" not in str(payload)
