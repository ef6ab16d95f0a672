"""Settings from the environment (``SWITCHBOARD_*`` plus the ecosystem's own variable names)."""

from __future__ import annotations

import re
import typing
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from graphs.embeddings import DEFAULT_EMBEDDING_MODEL, EMBEDDING_MODEL_PATTERN

DEFAULT_JWT_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 (refused in production)


class Settings(BaseSettings):
    """Server configuration. Every field is an environment variable: ``SWITCHBOARD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    env: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    # How log lines are written (api/logs.py): ``text``, or ``json``, one object per line.
    log_format: Literal["text", "json"] = "text"

    # Postgres: DATABASE_URL, or the embedded server with its data in data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SWITCHBOARD_DATABASE_URL")
    )
    data_dir: Path = Path(".switchboard")
    # The langgraph.json whose graphs are served as agents (graphs/custom.py), relative to the
    # working directory; unset (or a missing file): none.
    graphs_config: Path | None = Path("langgraph.json")
    pool_min_size: int = 2
    pool_max_size: int = 20
    # Size limits: every request body (api/limits.py; 413 past it), and the JSON one page of
    # thread history may hold (GET/POST /threads/{id}/history stop adding states past it).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The one route whose body may be larger: POST /chats/import (an exported evaluation set).
    import_max_bytes: int = Field(default=10 * 1_048_576, ge=1024)
    history_max_bytes: int = Field(default=4 * 1_048_576, ge=1024)
    # Uploads of knowledge documents (POST /agents/{id}/knowledge, POST /chats/{id}/files).
    knowledge_max_bytes: int = Field(default=10 * 1_048_576, ge=1024)
    # Each image of a message (decoded); the body of POST /chats/{id}/messages may hold four.
    image_max_bytes: int = Field(default=5 * 1_048_576, ge=1024)
    # An HNSW index per embedding model (approximate search) instead of exact search over the
    # agent's and chat's chunks. ``auto``: unless the database runs the embedded server's own
    # pgvector build on a CPU without AVX-512, where it dies of an illegal instruction
    # inserting into an HNSW index (``switchboard db build-pgvector``; storage/pgvector.py).
    knowledge_hnsw: bool | Literal["auto"] = "auto"
    # Fuse full-text matches into the vector search (reciprocal rank fusion). Off: on the test
    # corpus it measured worse (right document in the top 3: 87.0% against 98.1% by vectors).
    knowledge_hybrid: bool = False
    # Server-side prepared statements; off for PgBouncer in transaction mode before 1.21.
    prepared_statements: bool = True
    run_migrations: bool = True
    # Set in the container image: without DATABASE_URL the server refuses to start instead of
    # running the embedded Postgres inside a container, where its data would die with it.
    require_database_url: bool = False

    # Auth.
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    # How long a run's stream token (``POST /runs/{id}/stream-token``) opens its stream.
    stream_token_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # Abuse limits per client address (see api/services/auth.py): login_max_failures counts one
    # email's failures from one address (the lock is for that address only); this, one
    # address's failures across every email. Registrations and refreshes: per address, per minute.
    login_max_failures_per_address: int = Field(default=20, ge=1)
    register_per_minute: int = Field(default=10, ge=1)
    refresh_per_minute: int = Field(default=60, ge=1)
    # Shares one user may ask for per minute (POST /chats/{id}/shares): each tells whether an
    # email has an account, so this bounds how fast a signed-in user can learn that.
    shares_per_minute: int = Field(default=30, ge=1)
    # API keys one user may have working at once (neither revoked nor expired): 409 past it.
    api_keys_per_user: int = Field(default=20, ge=1, le=10_000)

    # Bootstrap admin, created (or promoted) at start when both are set.
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    admin_name: str = "Administrator"

    # Models: the one agents use when they name none.
    default_model: str | None = None
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "SWITCHBOARD_OPENAI_API_KEY")
    )

    # Runs: how long a finished run's event log stays readable (for replays and resumes).
    run_log_retention_seconds: int = Field(default=600, ge=1)
    # Finished runs' logs are expired this often even when the process is idle (0: only when a
    # run starts or a log is read). After a sweep that freed logs, when no run is active (or at
    # most once a minute while busy), release_memory collects garbage and hands free heap back
    # to the OS (glibc malloc_trim). Read by graphs/runtime/liveness.py.
    run_log_sweep_seconds: float = Field(default=5, ge=0)
    release_memory: bool = True
    # Cached checkpoints (a thread's last values, decoded message blobs) not used for this long
    # are forgotten by the same sweep, so a load's memory comes back once it ends; unset: half
    # the log retention, so both are gone within it.
    cache_idle_seconds: float | None = Field(default=None, ge=0)
    # On SIGTERM, active runs get this long to finish before they are marked interrupted.
    shutdown_grace_seconds: float = Field(default=30, ge=0)
    # Active runs beat this often; a run whose beat is stale_seconds old is found orphaned.
    heartbeat_seconds: float = Field(default=5, gt=0)
    stale_seconds: float = Field(default=30, gt=0)
    # A run still going after this long (from when it starts, not while it queues) is stopped
    # and ends with an error (`RunTimeout`); 0: no limit.
    run_timeout_seconds: float = Field(default=0, ge=0)

    # Several processes: with Redis, event logs live in Redis Streams and any process can
    # read or stop any run. execute_runs=false makes an API process only queue runs, for
    # `switchboard worker` processes to execute (worker_concurrency at once each).
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "SWITCHBOARD_REDIS_URL")
    )
    execute_runs: bool = True
    worker_concurrency: int = Field(default=16, ge=1, le=1000)
    # A worker serves no HTTP API: with a port set, it serves its Prometheus metrics there, to
    # anyone who reaches it (no token), so the host defaults to loopback. API processes serve
    # theirs at GET /metrics to admin tokens instead (docs/metrics.md says why).
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # Knowledge search and long-term memory (graphs/embeddings.py): the model every vector is
    # made with; changing it re-indexes documents and memories in the background.
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, pattern=EMBEDDING_MODEL_PATTERN)
    # Expired store items (a ttl given to PUT /store/items), already left out of reads, are
    # deleted this often (api/services/store_sweeper.py); 0: never.
    store_sweep_seconds: float = Field(default=300, ge=0)
    # Threads (chats, to either API) without a ttl of their own expire this many minutes after
    # they last changed (unset: never), and then go, or keep only their latest checkpoint, as
    # the strategy says. One process at a time sweeps them this often
    # (api/services/thread_sweeper.py); 0: never.
    thread_ttl_minutes: float | None = Field(
        default=None, ge=0, le=525_600 * 100, allow_inf_nan=False
    )
    thread_ttl_strategy: Literal["delete", "keep_latest"] = "delete"
    thread_sweep_seconds: float = Field(default=300, ge=0)
    # Chats idle (no run ended, no rename) for longer than this many days are deleted with
    # their runs and checkpoints, whatever their own ttl; unset: kept forever. One process at
    # a time sweeps them this often (api/services/chat_retention.py); 0: this process never.
    chat_retention_days: float | None = Field(default=None, gt=0, le=36_500, allow_inf_nan=False)
    chat_retention_sweep_seconds: float = Field(default=300, ge=0)
    # Every process (API and worker) starts the runs of due crons on time; it looks this often
    # for crons other processes made or changed (api/services/cron_scheduler.py); 0: this
    # process starts none.
    cron_poll_seconds: float = Field(default=5, ge=0)

    # Tracing (graphs/tracing.py) is on when OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_
    # form) is set; spans carry message content (the user's message, the answer, tool
    # arguments and results, each cut to 1,000 characters) only with this on.
    trace_content: bool = False

    # Browsers allowed to call the API with credentials; never a wildcard.
    cors_origins: list[str] = []

    # Webhooks (api/services/webhooks.py): a run that names one is POSTed its final record when
    # it ends, signed with HMAC-SHA256 under this secret. Unset: runs naming a webhook are
    # refused (422 `webhooks_disabled`) and this process delivers none.
    webhook_secret: SecretStr | None = None
    # Hosts (as written in the URL, e.g. "127.0.0.1", "hooks.internal") a webhook may name
    # although they resolve to loopback, private or link-local addresses (tools/net_guard.py).
    webhook_allowed_hosts: list[str] = []
    # Attempts per delivery (connection errors, timeouts, 5xx and 429 are tried again), the
    # delay before the second (doubling each time after), and each attempt's time limit.
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_seconds: float = Field(default=5, ge=0, le=3600)
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)

    # The http_fetch tool (tools/http_fetch.py): hosts (as written in the URL) it may fetch
    # although they resolve to loopback, private or link-local addresses (tools/net_guard.py);
    # the largest body it reads; the time the whole fetch (redirects included) may take; and
    # how many redirects it follows, each one checked again.
    http_fetch_allowed_hosts: list[str] = []
    http_fetch_max_bytes: int = Field(default=1_048_576, ge=1024, le=100 * 1_048_576)
    http_fetch_timeout_seconds: float = Field(default=10, gt=0, le=300)
    http_fetch_max_redirects: int = Field(default=5, ge=0, le=20)

    # MCP servers (tools/mcp.py): hosts (as written in the URL) a streamable-HTTP server may
    # have although they resolve to loopback, private or link-local addresses; the executables
    # a stdio server may run (they run on this host, so only these); the time one session
    # (connect, list or call, close) may take.
    mcp_allowed_hosts: list[str] = []
    mcp_stdio_commands: list[str] = []
    mcp_timeout_seconds: float = Field(default=30, gt=0, le=600)

    # Quotas per user (api/services/quotas.py), each role's defaults; unset: unlimited. An
    # admin sets a user's own (PUT /admin/users/{id}/quotas), which win over these. Runs per
    # minute: a sliding minute; tokens per day: the UTC day's usage so far (a run over it is
    # refused only at the next start); active runs: running and queued.
    quota_runs_per_minute: int | None = Field(default=None, ge=0, le=1_000_000)
    quota_tokens_per_day: int | None = Field(default=None, ge=0, le=10**15)
    quota_active_runs: int | None = Field(default=None, ge=0, le=1_000_000)
    quota_admin_runs_per_minute: int | None = Field(default=None, ge=0, le=1_000_000)
    quota_admin_tokens_per_day: int | None = Field(default=None, ge=0, le=10**15)
    quota_admin_active_runs: int | None = Field(default=None, ge=0, le=1_000_000)

    @field_validator("graphs_config", mode="before")
    @classmethod
    def _no_graphs_when_empty(cls, value: object) -> object:
        # SWITCHBOARD_GRAPHS_CONFIG= (empty) turns the graphs of langgraph.json off.
        return None if value == "" else value

    @field_validator("log_level")
    @classmethod
    def _a_log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    @field_validator("database_url")
    @classmethod
    def _a_postgres_url(cls, value: str | None) -> str | None:
        # The reason names the form and never the value, which holds the password.
        if value is not None and not _is_conninfo(value):
            raise ValueError(
                "must be a Postgres connection URL, e.g. postgresql://user:password@host:5432/db"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not _is_redis_url(value):
            raise ValueError("must be a Redis URL, e.g. redis://:password@host:6379/0")
        return value

    @field_validator(
        "quota_runs_per_minute", "quota_tokens_per_day", "quota_active_runs",
        "quota_admin_runs_per_minute", "quota_admin_tokens_per_day", "quota_admin_active_runs",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _unlimited_when_empty(cls, value: object) -> object:
        # SWITCHBOARD_QUOTA_…= (empty) is unset: unlimited.
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET:
            raise ValueError(
                "SWITCHBOARD_JWT_SECRET must be set to a secret of your own in production"
            )
        if self.env == "production" and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("SWITCHBOARD_JWT_SECRET must be at least 32 characters in production")
        if "*" in self.cors_origins:
            raise ValueError("SWITCHBOARD_CORS_ORIGINS cannot be '*': list the origins")
        if self.require_database_url and not self.database_url:
            raise ValueError(
                "DATABASE_URL must be set: SWITCHBOARD_REQUIRE_DATABASE_URL is true (the"
                " container image never runs the embedded Postgres)"
            )
        if not self.execute_runs and not self.redis_url:
            raise ValueError(
                "SWITCHBOARD_EXECUTE_RUNS=false needs REDIS_URL: workers get runs through it"
            )
        return self

    @cached_property
    def effective_default_model(self) -> str:
        """The model agents without a model of their own use."""
        if self.default_model:
            return self.default_model
        return "openai:gpt-4o-mini" if self.openai_api_key else "fake:echo"

    @property
    def effective_cache_idle_seconds(self) -> float:
        if self.cache_idle_seconds is not None:
            return self.cache_idle_seconds
        return self.run_log_retention_seconds / 2

    @property
    def quota_defaults(self) -> dict[str, dict[str, int | None]]:
        """Each role's default quotas, as storage/quotas.py takes them."""
        return {
            "user": {
                "runs_per_minute": self.quota_runs_per_minute,
                "tokens_per_day": self.quota_tokens_per_day,
                "active_runs": self.quota_active_runs,
            },
            "admin": {
                "runs_per_minute": self.quota_admin_runs_per_minute,
                "tokens_per_day": self.quota_admin_tokens_per_day,
                "active_runs": self.quota_admin_active_runs,
            },
        }

    @property
    def database_kind(self) -> str:
        return "external" if self.database_url else "embedded"


def _is_conninfo(value: str) -> bool:
    try:
        port = str(conninfo_to_dict(value).get("port") or "5432")
    except psycopg.Error:
        return False
    return all(part.isdigit() for part in port.split(","))


def _is_redis_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("redis", "rediss", "unix")


class ConfigurationError(Exception):
    """Settings that cannot be used: each line names a variable and what it must be, and
    nothing else (pydantic's own message repeats every input, secrets included)."""


def load_settings(**overrides: Any) -> Settings:
    """``Settings()``, its refusals turned into a ``ConfigurationError`` that is safe to print."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [
            _problem(error["loc"], error["msg"])
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise ConfigurationError("; ".join(problems)) from None
    except SettingsError as exc:
        # Raised before validation, when a complex value (a list) is not JSON.
        found = re.search(r'field "(\w+)"', str(exc))
        field = found.group(1) if found else None
        if field is None:
            raise ConfigurationError("a variable could not be parsed") from None
        expected = "a value of the right type"
        if typing.get_origin(Settings.model_fields[field].annotation) is list:
            expected = 'a JSON list, e.g. ["https://app.example.com"]'
        raise ConfigurationError(f"{variable_of(field)} must be {expected}") from None


def variable_of(field: str) -> str:
    """The environment variable that sets ``field``."""
    info = Settings.model_fields.get(field)
    if info is None and field.isupper():
        # A field set through one of its aliases is reported by that alias (DATABASE_URL).
        return field
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"SWITCHBOARD_{field.upper()}"


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    # A check across fields (the model validator) names its variable in its own message.
    message = message.removeprefix("Value error, ")
    if not loc:
        return message
    return f"{variable_of(str(loc[0]))}: {message}"
