from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from nogil_bench.auth import service
from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.auth.models import User, UserRecord
from nogil_bench.auth.schemas import Token, UserCreate, UserPublic
from nogil_bench.core.db import EngineDep
from nogil_bench.core.deps import SettingsDep
from nogil_bench.core.errors import ErrorPublic, NotAuthenticatedError
from nogil_bench.core.openapi import BODY_ERRORS, UNAUTHENTICATED, Responses, error_response
from nogil_bench.core.ratelimit import RateLimiter

router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"], responses=UNAUTHENTICATED)


def rate_limited(description: str) -> Responses:
    return {
        429: {
            "model": ErrorPublic,
            "description": f"{description}; retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"required": True, "schema": {"type": "integer"}}},
        }
    }


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    summary="Create an account",
    responses={
        **error_response(409, "The email is taken"),
        **BODY_ERRORS,
        **rate_limited("Too many accounts created from this address"),
    },
)
def register(
    request: Request, engine: EngineDep, settings: SettingsDep, user_create: UserCreate
) -> User:
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(
        settings.REGISTER_RATE_LIMIT, "register-from", client_address(request), what="registrations"
    )
    return service.create_user(engine=engine, user_create=user_create, settings=settings)


@router.post(
    "/token",
    summary="Log in: OAuth2 password form (username = email) to a bearer token",
    responses={
        401: {**UNAUTHENTICATED[401], "description": "Wrong email or password"},
        **BODY_ERRORS,
        **rate_limited("Too many failed logins for this email, or attempts from this address"),
    },
)
def login(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    limiter: RateLimiter = request.app.state.rate_limiter
    email = service.normalize_email(form.username)
    limiter.hit(
        settings.LOGIN_RATE_LIMIT, "login-from", client_address(request), what="login attempts"
    )
    limiter.check(settings.LOGIN_FAILURE_LIMIT, "login-failed", email, what="failed logins")
    user = service.authenticate(
        engine=engine, email=form.username, password=form.password, settings=settings
    )
    if user is None:
        limiter.hit(settings.LOGIN_FAILURE_LIMIT, "login-failed", email, what="failed logins")
        raise NotAuthenticatedError("wrong email or password")
    return Token(access_token=service.issue_token(user_id=user.id, settings=settings))


@users_router.get("/me", summary="The logged-in user", response_model=UserPublic)
async def read_me(current_user: CurrentUser) -> UserRecord:
    # Async: a sync route costs two more thread-pool hops (the call and FastAPI's check of
    # its answer), and this one touches nothing that blocks.
    return current_user
