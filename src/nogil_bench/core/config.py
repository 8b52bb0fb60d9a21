"""The one settings object: every knob of nogil-bench, read from NOGIL_BENCH_* and .env."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

type Environment = Literal["development", "production"]
type LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]


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
    SHUTDOWN_GRACE_SECONDS: int = Field(
        default=20,
        ge=1,
        description="On SIGTERM/SIGINT, how long in-flight requests may take before the server "
        "stops. Container stop timeouts must be longer (compose.yaml: 30 s).",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
