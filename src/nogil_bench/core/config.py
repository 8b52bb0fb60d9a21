"""The one settings object: every knob of nogil-bench, read from NOGIL_BENCH_* and .env."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from limits import parse_many
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nogil_bench.core import runtime

type Environment = Literal["development", "production"]
type LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]

# Values copied from examples that must never sign tokens in production.
PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "secret", "dev", "development"})
MIN_SECRET_KEY_CHARS = 32
type BrokerKind = Literal["redis", "amqp"]
# The brokers Celery reaches through the transports the image keeps (kombu's `redis` and
# `pyamqp`, a pure-Python AMQP client that keeps the GIL off), by URL scheme.
BROKER_SCHEMES: dict[str, BrokerKind] = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
}
MIB = 1024 * 1024
# Where keys of the file store (core/storage.py) start; the local store's folders in DATA_DIR.
UPLOADS_DIR = Path("uploads")
OUTPUTS_DIR = Path("outputs")


# Every route of the API is under this prefix (health probes and /metrics are not).
API_PREFIX = "/api/v1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOGIL_BENCH_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    ENVIRONMENT: Environment = "development"
    DATA_DIR: Path = Field(default=Path("data"), description="Database, outputs and results.")
    FILE_STORE: Literal["local", "database"] = Field(
        default="local",
        description="Where uploads and outputs live: 'local', files under DATA_DIR (one "
        "machine, or a directory every process shares); 'database', in the database, in tables "
        "of their own, so that every process that reaches the database reaches them. Files "
        "already stored stay where they are when this changes.",
    )
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
    WRITE_LOCK_TIMEOUT_SECONDS: float = Field(
        default=10,
        gt=0,
        description="How long a writer waits for its turn among this process's SQLite writers "
        "before answering 503 with Retry-After; on MySQL and MariaDB, how long it waits for a "
        "row lock (innodb_lock_wait_timeout, whole seconds) before it retries.",
    )
    WORKER_THREADS: int = Field(
        default=40,
        ge=1,
        le=1000,
        description="Threads that run blocking request work (sync routes, uploads, database "
        "writes) at once; the database pool is sized from it and READ_THREADS.",
    )
    READ_THREADS: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Threads that run the request path's short reads (the token's user, a "
        "page of a list). Default: on SQLite, one per core beside the event loop's (reads are "
        "CPU here, and more threads than cores only contend); on a database server, 4 per core "
        "(reads mostly wait on the network). See docs/serving.md, read threads.",
    )
    DB_POOL_TIMEOUT_SECONDS: float = Field(
        default=10, gt=0, description="How long a request waits for a database connection (503)."
    )

    # Load: what one process takes before it answers 429 or 503 instead
    MAX_QUEUED_JOBS_PER_USER: int = Field(
        default=5000, ge=1, description="Queued images (jobs) per user; above it, 429."
    )
    MAX_QUEUED_JOBS: int = Field(
        default=50_000, ge=1, description="Queued images (jobs) in all; above it, 503."
    )
    MAX_QUEUED_BENCHMARKS_PER_USER: int = Field(default=10, ge=1, description="Above it, 429.")
    MAX_QUEUED_BENCHMARKS: int = Field(default=100, ge=1, description="Above it, 503.")
    OVERLOAD_RETRY_AFTER_SECONDS: int = Field(
        default=5, ge=1, description="The Retry-After given with a 429 or 503 for a full queue."
    )
    SUBMISSION_RATE_LIMIT: str = Field(
        default="50/second;1000/minute",
        description="Submissions per user (jobs, batches, benchmarks), in the `limits` "
        "notation ('N/second;M/minute'); above it, 429 with Retry-After.",
    )
    LOGIN_FAILURE_LIMIT: str = Field(
        default="10/minute", description="Failed logins per email; above it, 429."
    )
    LOGIN_RATE_LIMIT: str = Field(
        default="60/minute", description="Login attempts per client address; above it, 429."
    )
    REGISTER_RATE_LIMIT: str = Field(
        default="10/minute;100/day",
        description="Accounts created per client address; above it, 429.",
    )
    SHARED_PAGE_RATE_LIMIT: str = Field(
        default="30/minute;300/hour",
        description="Shared benchmark pages (GET /api/v1/shared/{token}) read per client "
        "address, whether the link exists or not, so that tokens cannot be guessed at speed; "
        "above it, 429 with Retry-After.",
    )
    IDEMPOTENCY_KEY_TTL_HOURS: int = Field(
        default=24, ge=1, description="How long an Idempotency-Key is remembered."
    )

    # Auth
    SECRET_KEY: SecretStr | None = Field(
        default=None,
        description="Signs access tokens. Required in production; generated per start in "
        "development (tokens then die with the process).",
    )
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1, le=60 * 24 * 30)
    # OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane): each login or registration
    # holds the memory while it hashes, on one of WORKER_THREADS.
    ARGON2_TIME_COST: int = Field(
        default=2, ge=1, le=10, description="Argon2id's passes over its memory, per hash."
    )
    ARGON2_MEMORY_KIB: int = Field(
        default=19_456,
        ge=8,
        le=1024 * 1024,
        description="Argon2id's memory per hash, in KiB. Changing a cost re-hashes each "
        "password at its next login, as it does the bcrypt hashes of older accounts.",
    )

    # Jobs
    MAX_UPLOAD_BYTES: int = Field(default=20 * MIB, ge=1, description="Per uploaded image.")
    MAX_IMAGE_PIXELS: int = Field(
        default=25_000_000, ge=1, description="Larger images are refused (decompression bombs)."
    )
    MAX_WORKERS: int = Field(default=8, ge=1, le=256, description="Largest pool a job may ask.")
    MAX_BATCH_IMAGES: int = Field(default=256, ge=1, description="Images per batch or benchmark.")
    MAX_BATCH_REQUEST_BYTES: int = Field(
        default=256 * MIB,
        ge=1,
        description="A whole POST /batches body, every image and the form around them; above "
        "it, 413. At least MAX_UPLOAD_BYTES. Uploads are spooled to temporary files on disk.",
    )
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
    EXECUTOR_NICENESS: int = Field(
        default=10,
        ge=0,
        le=19,
        description="The executor thread's nice value, which its runners' threads and "
        "processes inherit (Linux): requests keep their latency while a batch keeps every "
        "core busy; an idle machine still gives the work all of its CPU. 0 leaves it alone.",
    )
    LEASE_SECONDS: float = Field(
        default=30,
        gt=0,
        description="A process holds what it runs for this long, renewed every third of it; "
        "work whose lease ran out (its process died) goes back to the queue.",
    )
    EXECUTION_TIMEOUT_SECONDS: float = Field(
        default=900,
        gt=0,
        description="Longest run of a runner over one unit (a single job, one chunk of a "
        "batch, one benchmark configuration); past it the work fails with the reason.",
    )
    RETENTION_DAYS: int = Field(
        default=30,
        ge=0,
        description="Finished jobs, batches and benchmarks are deleted, with their files, this "
        "many days after they finish; 0 keeps them all.",
    )

    # Metrics
    METRICS_TOKEN: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="When set, GET /metrics needs 'Authorization: Bearer <this token>' (401 "
        "otherwise). Unset, /metrics answers anyone, as Prometheus usually scrapes on a private "
        "network; in production the service warns at start.",
    )
    METRICS_CACHE_SECONDS: float = Field(
        default=5,
        ge=0,
        description="How long the figures /metrics reads from the database (and broker) are "
        "reused: scrapes within it run no query. 0 reads at every scrape.",
    )

    # Distributed execution (Celery on Redis or RabbitMQ)
    BROKER_URL: str | None = Field(
        default=None,
        description="redis://host:port/db or amqp://user:password@host:port/vhost (RabbitMQ): "
        "submissions go to Celery queues there and `nogil-bench worker` processes run them, on "
        "any machine that reaches the broker and the database. Unset: the service runs its "
        "queue itself (the embedded executor).",
    )
    WORKER_NAME: str | None = Field(
        default=None,
        description="How a worker names itself on the rows it runs; default: host name and pid.",
    )
    WORKER_METRICS_PORT: int = Field(
        default=9540,
        ge=0,
        le=65535,
        description="Where a worker serves its Prometheus metrics (jobs run and their duration "
        "by runner, its GIL state, its process); 0 turns them off.",
    )
    WORKER_TASK_EVENTS: bool = Field(
        default=False,
        description="Whether a worker sends Celery's task events (received, started, "
        "succeeded...), without which Flower sees no task: a few broker messages per task, "
        "8% of the rate of the tiniest jobs (scripts/bench_task_events.py).",
    )
    REDISPATCH_SECONDS: float = Field(
        default=3600,
        gt=0,
        description="Work handed to the broker that is still queued after this long is handed "
        "again (a broker restarted without persistence lost it); a second copy is harmless, "
        "as a worker runs only work that is still queued. Also the broker's visibility timeout "
        "floor: an unacknowledged task comes back after max(this, 2 x EXECUTION_TIMEOUT_SECONDS).",
    )

    _secret_generated: bool = PrivateAttr(default=False)

    @field_validator(
        "SUBMISSION_RATE_LIMIT",
        "LOGIN_FAILURE_LIMIT",
        "LOGIN_RATE_LIMIT",
        "REGISTER_RATE_LIMIT",
        "SHARED_PAGE_RATE_LIMIT",
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as error:
            raise ValueError(f"not a rate limit such as '10/second;100/minute': {error}") from None
        return value

    @field_validator("BROKER_URL")
    @classmethod
    def _broker_is_redis_or_rabbitmq(cls, value: str | None) -> str | None:
        if value is not None and value.partition("://")[0] not in BROKER_SCHEMES:
            raise ValueError(
                f"not a broker URL nogil-bench speaks: its scheme must be one of "
                f"{', '.join(sorted(BROKER_SCHEMES))} (Redis or RabbitMQ)"
            )
        return value

    @model_validator(mode="after")
    def _batch_request_holds_an_upload(self) -> Self:
        if self.MAX_BATCH_REQUEST_BYTES < self.MAX_UPLOAD_BYTES:
            raise ValueError(
                f"NOGIL_BENCH_MAX_BATCH_REQUEST_BYTES ({self.MAX_BATCH_REQUEST_BYTES}) must be at "
                f"least NOGIL_BENCH_MAX_UPLOAD_BYTES ({self.MAX_UPLOAD_BYTES}): a batch could not "
                "hold one image of the size a job takes"
            )
        return self

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
    def db_pool_size(self) -> int:
        """Every worker thread and read thread, plus the executor's threads (runs, heartbeat)
        and a spare."""
        return self.WORKER_THREADS + self.read_threads + 4

    @property
    def read_threads(self) -> int:
        """READ_THREADS, or its default for this store and machine."""
        if self.READ_THREADS is not None:
            return self.READ_THREADS
        cores = runtime.cpu_count()
        return max(1, cores - 1) if self.database_url.startswith("sqlite") else 4 * cores

    @property
    def distributed(self) -> bool:
        """True when Celery workers run the queue (a broker is set)."""
        return self.BROKER_URL is not None

    @property
    def broker_kind(self) -> BrokerKind | None:
        """Which broker BROKER_URL names: "redis" or "amqp" (RabbitMQ); None without one."""
        if self.BROKER_URL is None:
            return None
        return BROKER_SCHEMES[self.BROKER_URL.partition("://")[0]]

    @property
    def broker_visibility_timeout_s(self) -> float:
        """How long the broker waits for a task's acknowledgement before it hands the task out
        again: above the longest execution, so a slow task is never run twice at once."""
        return max(self.REDISPATCH_SECONDS, 2 * self.EXECUTION_TIMEOUT_SECONDS)

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
