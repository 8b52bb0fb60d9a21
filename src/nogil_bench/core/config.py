"""The one settings object: every knob of nogil-bench, read from NOGIL_BENCH_* and .env."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

type Environment = Literal["development", "production"]
type LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]

# Values copied from examples that must never sign tokens in production.
PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "secret", "dev", "development"})
MIN_SECRET_KEY_CHARS = 32
MIB = 1024 * 1024
# Under DATA_DIR; the database stores paths relative to it.
UPLOADS_DIR = Path("uploads")
OUTPUTS_DIR = Path("outputs")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOGIL_BENCH_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    ENVIRONMENT: Environment = "development"
    DATA_DIR: Path = Field(default=Path("data"), description="Database, outputs and results.")
    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)
    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: Literal["json", "text"] = Field(
        default="json", description="One JSON object per line, or readable text (development)."
    )
    SLOW_REQUEST_MS: float = Field(
        default=500, gt=0, description="Requests slower than this are logged as warnings."
    )
    SHUTDOWN_GRACE_SECONDS: int = Field(
        default=20,
        ge=1,
        description="On SIGTERM/SIGINT, how long running jobs and in-flight requests may take; "
        "jobs still running then go back to the queue. Also the Retry-After given meanwhile. "
        "Container stop timeouts must be longer (compose.yaml: 30 s).",
    )

    # Store
    DATABASE_URL: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite at DATA_DIR/nogil_bench.db."
    )
    DB_CONNECT_ATTEMPTS: int = Field(
        default=6, ge=1, description="Start-up tries to reach the database before exiting 1."
    )
    DB_CONNECT_BACKOFF_SECONDS: float = Field(
        default=0.5, gt=0, description="First wait between tries; doubles each time, up to 8 s."
    )
    SQLITE_BUSY_TIMEOUT_MS: int = Field(
        default=10_000, ge=0, description="How long a writer waits for the lock before failing."
    )

    # Auth
    SECRET_KEY: SecretStr | None = Field(
        default=None,
        description="Signs access tokens. Required in production; generated per start in "
        "development (tokens then die with the process).",
    )
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1, le=60 * 24 * 30)
    BCRYPT_ROUNDS: int = Field(
        default=12, ge=4, le=16, description="bcrypt's cost; each step doubles the work."
    )

    # Jobs
    MAX_UPLOAD_BYTES: int = Field(default=20 * MIB, ge=1, description="Per uploaded image.")
    MAX_IMAGE_PIXELS: int = Field(
        default=25_000_000, ge=1, description="Larger images are refused (decompression bombs)."
    )
    MAX_WORKERS: int = Field(default=8, ge=1, le=256, description="Largest pool a job may ask.")
    MAX_BATCH_IMAGES: int = Field(default=256, ge=1, description="Images per batch or benchmark.")
    MAX_SYNTHETIC_SIDE: int = Field(
        default=4096, ge=1, description="Widest and tallest synthetic image, in pixels."
    )
    MAX_ATTEMPTS: int = Field(
        default=3,
        ge=1,
        description="Runs a job or benchmark may start. One left running by a crashed process "
        "is requeued at the next start, or failed once it has had this many.",
    )
    EXECUTOR_POLL_SECONDS: float = Field(
        default=5.0, gt=0, description="How often an idle executor looks for work it missed."
    )
    RETENTION_DAYS: int = Field(
        default=30,
        ge=0,
        description="Finished jobs, batches and benchmarks are deleted, with their files, this "
        "many days after they finish; 0 keeps them all.",
    )

    _secret_generated: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _require_real_secret_in_production(self) -> Self:
        secret = self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else ""
        weak = secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_KEY_CHARS
        if self.ENVIRONMENT == "production" and weak:
            raise ValueError(
                "NOGIL_BENCH_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_CHARS} characters in production (not a placeholder); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if not secret:
            self.SECRET_KEY = SecretStr(secrets.token_urlsafe(32))
            self._secret_generated = True
        return self

    @property
    def secret_generated(self) -> bool:
        """True when no SECRET_KEY was given and this process made one up (development only)."""
        return self._secret_generated

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.DATA_DIR / 'nogil_bench.db'}"

    @property
    def outputs_dir(self) -> Path:
        return self.DATA_DIR / OUTPUTS_DIR

    @property
    def uploads_dir(self) -> Path:
        return self.DATA_DIR / UPLOADS_DIR


@lru_cache
def get_settings() -> Settings:
    return Settings()
