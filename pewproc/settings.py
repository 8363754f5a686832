"""Every setting of pewproc, read once from the environment into a frozen dataclass.

Each field names its environment variable and its help text in one place, so the CLI options
(`pewproc.ops.cli`) and the README's configuration table are derived from here and cannot drift.
The variable names of the worker pewproc replaces (`RABBITMQ_HOST`, `WORKER_POOL_SIZE`, ...) are
kept as they were.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit


def _setting(env: str, default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "secret": secret})


def _default_pool_size() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup (container) CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, _cgroup_cpu_quota() or cpus or 1))


def _cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """Whole CPUs allowed by a cgroup v2 quota ("200000 100000" = 2), rounded up; None if none."""
    try:
        quota, period = Path(path).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Configuration of one pewproc process; durations in seconds, sizes in bytes."""

    # Broker
    rabbitmq_url: str = _setting(
        "RABBITMQ_URL", "",
        "Full AMQP URL (amqp:// or amqps://), or the URLs of a cluster's nodes, comma-separated "
        "(the first that answers is used); overrides the RABBITMQ_* parts.",
        secret=True,
    )
    rabbitmq_host: str = _setting("RABBITMQ_HOST", "localhost", "Broker host.")
    rabbitmq_port: int = _setting("RABBITMQ_PORT", 5672, "Broker port.")
    rabbitmq_user: str = _setting("RABBITMQ_USER", "guest", "Broker user.")
    rabbitmq_password: str = _setting("RABBITMQ_PASSWORD", "guest", "Broker password.", secret=True)
    rabbitmq_vhost: str = _setting("RABBITMQ_VHOST", "/", "Broker virtual host.")
    rabbitmq_heartbeat: int = _setting(
        "RABBITMQ_HEARTBEAT", 60, "AMQP heartbeat interval proposed to the broker, seconds."
    )
    rabbitmq_ca_file: str = _setting(
        "RABBITMQ_CA_FILE", "", "CA bundle for amqps:// (empty: the system's trust store)."
    )
    rabbitmq_cert_file: str = _setting(
        "RABBITMQ_CERT_FILE", "", "Client certificate for amqps:// (PEM, optional)."
    )
    rabbitmq_key_file: str = _setting(
        "RABBITMQ_KEY_FILE", "", "Client key for amqps:// (PEM, optional)."
    )
    rabbitmq_management_url: str = _setting(
        "RABBITMQ_MANAGEMENT_URL", "",
        "Management API base URL (e.g. http://localhost:15672); lets `queue stats` show unacked.",
    )
    environment: str = _setting(
        "ENVIRONMENT", "development", "Names the queues: match.processing.{ENVIRONMENT}."
    )
    prefetch_count: int = _setting(
        "PREFETCH_COUNT", 0, "Unacknowledged deliveries allowed in flight (0: the pool size)."
    )

    # Database
    database_url: str = _setting(
        "DATABASE_URL", "", "Full PostgreSQL URL or conninfo; overrides the POSTGRES_* parts.",
        secret=True,
    )
    postgres_host: str = _setting("POSTGRES_HOST", "localhost", "Database host.")
    postgres_port: int = _setting("POSTGRES_PORT", 5432, "Database port.")
    postgres_db: str = _setting("POSTGRES_DB", "postgres", "Database name.")
    postgres_user: str = _setting("POSTGRES_USER", "postgres", "Database user.")
    postgres_password: str = _setting("POSTGRES_PASSWORD", "", "Database password.", secret=True)
    postgres_sslmode: str = _setting(
        "POSTGRES_SSLMODE", "prefer", "libpq sslmode (disable, prefer, require, verify-full...)."
    )
    postgres_sslrootcert: str = _setting(
        "POSTGRES_SSLROOTCERT", "", "CA file used to verify the database server (verify-ca/full)."
    )
    postgres_schema: str = _setting(
        "POSTGRES_SCHEMA", "pewproc", "PostgreSQL schema that holds pewproc's tables."
    )
    db_pool_min_size: int = _setting(
        "DB_POOL_MIN_SIZE", 1, "Connections each child keeps open."
    )
    db_pool_max_size: int = _setting(
        "DB_POOL_MAX_SIZE", 2, "Connections each child may open at most."
    )
    db_pool_timeout: float = _setting(
        "DB_POOL_TIMEOUT_SECONDS", 10.0,
        "How long a task waits for a database connection before failing as transient.",
    )

    # Worker
    worker_id: str = _setting(
        "WORKER_ID", "", "Name of this worker in logs, headers and the matches table "
        "(empty: pewproc-{hostname})."
    )
    worker_pool_size: int = _setting(
        "WORKER_POOL_SIZE", 0, "Child processes that parse matches (0: the CPUs available)."
    )
    processing_mode: str = _setting(
        "PROCESSING_MODE", "parallel",
        "parallel (process pool) or sequential (one match at a time in the main process: the "
        "rollback switch).",
    )
    shutdown_timeout: float = _setting(
        "SHUTDOWN_TIMEOUT_SECONDS", 60.0,
        "On SIGTERM, how long in-flight matches may run before the worker exits anyway.",
    )
    task_timeout: float = _setting(
        "TASK_TIMEOUT_SECONDS", 300.0,
        "A match still running after this long has its child replaced and is retried.",
    )
    max_tasks_per_child: int = _setting(
        "MAX_TASKS_PER_CHILD", 500, "Replace the children after about this many matches each "
        "(0: never)."
    )
    max_retries: int = _setting(
        "MAX_RETRIES", 5, "Retries of a transient failure before the message is dead-lettered."
    )
    retry_delays: str = _setting(
        "RETRY_DELAYS", "5,30,120,600",
        "Comma-separated waits before retry 1, 2, ... in seconds (the last one repeats).",
    )

    # Telemetry
    telemetry_root: str = _setting(
        "TELEMETRY_ROOT", ".", "Directory every file_path must resolve into (symlinks included)."
    )
    match_kinds: str = _setting(
        "MATCH_KINDS", "official,competitive",
        "Kinds of match processed, comma-separated ('*' for all); others are recorded as skipped.",
    )
    tracked_players: str = _setting(
        "TRACKED_PLAYERS", "*",
        "Account ids whose damage events and circle positions are stored, comma-separated "
        "('*': every human player; 'none': nobody; 'table': those in the tracked_players table).",
    )
    tracked_players_refresh: float = _setting(
        "TRACKED_PLAYERS_REFRESH_SECONDS", 300.0,
        "With TRACKED_PLAYERS=table, how often each worker process re-reads the table, seconds.",
    )
    max_message_bytes: int = _setting(
        "MAX_MESSAGE_BYTES", 65536, "Largest message body accepted."
    )
    max_file_bytes: int = _setting(
        "MAX_FILE_BYTES", 200_000_000, "Largest telemetry file accepted, as stored on disk."
    )
    max_json_bytes: int = _setting(
        "MAX_JSON_BYTES", 200_000_000,
        "Largest telemetry JSON accepted after decompression (a parsed match takes about 8x "
        "its JSON size in memory).",
    )
    max_events: int = _setting("MAX_EVENTS", 1_000_000, "Most events accepted in one match.")
    file_settle_seconds: float = _setting(
        "FILE_SETTLE_SECONDS", 60.0,
        "A cut-off file modified less than this many seconds ago is retried as still being "
        "written (file_incomplete) instead of dead-lettered as truncated.",
    )

    # Operator surface
    log_level: str = _setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")
    log_format: str = _setting("LOG_FORMAT", "text", "text or json (one JSON object per line).")
    metrics_port: int = _setting(
        "METRICS_PORT", 9093, "Port of /metrics, /healthz and /readyz (0: no HTTP server)."
    )
    metrics_addr: str = _setting(
        "METRICS_ADDR", "127.0.0.1", "Address the metrics server binds (0.0.0.0 in containers)."
    )
    stats_interval: float = _setting(
        "STATS_INTERVAL_SECONDS", 60.0, "Period of the stats log line and of queue depth polls."
    )

    def __post_init__(self) -> None:
        if self.processing_mode not in ("parallel", "sequential"):
            raise ValueError(
                f"PROCESSING_MODE must be 'parallel' or 'sequential', not {self.processing_mode!r}"
            )
        if self.worker_pool_size < 0 or self.prefetch_count < 0:
            raise ValueError("WORKER_POOL_SIZE and PREFETCH_COUNT cannot be negative")
        if not 1 <= self.db_pool_min_size <= self.db_pool_max_size:
            raise ValueError(
                "need 1 <= DB_POOL_MIN_SIZE <= DB_POOL_MAX_SIZE, got "
                f"{self.db_pool_min_size} and {self.db_pool_max_size}"
            )
        if self.log_format not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be 'text' or 'json', not {self.log_format!r}")
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.postgres_schema):
            raise ValueError(
                "POSTGRES_SCHEMA must be a lower-case identifier (letters, digits, _): "
                f"{self.postgres_schema!r}"
            )
        if self.max_retries < 0:
            raise ValueError("MAX_RETRIES cannot be negative")
        if self.tracked_players_refresh < 0:
            raise ValueError("TRACKED_PLAYERS_REFRESH_SECONDS cannot be negative")
        self.retry_delay_list  # noqa: B018 - validates RETRY_DELAYS early

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default: os.environ); `overrides` win over both."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _convert(f, raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # Derived values

    @property
    def pool_size(self) -> int:
        if self.processing_mode == "sequential":
            return 1
        return self.worker_pool_size or _default_pool_size()

    @property
    def prefetch(self) -> int:
        if self.processing_mode == "sequential":
            return 1
        return self.prefetch_count or self.pool_size

    @property
    def worker_name(self) -> str:
        return self.worker_id or f"pewproc-{socket.gethostname()}"

    @property
    def work_queue(self) -> str:
        return f"match.processing.{self.environment}"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.work_queue}.dlq"

    @property
    def retry_delay_list(self) -> tuple[int, ...]:
        try:
            delays = tuple(int(part) for part in self.retry_delays.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"RETRY_DELAYS must be whole seconds: {self.retry_delays!r}") from None
        if not delays or min(delays) < 1:
            raise ValueError(f"RETRY_DELAYS needs at least one delay >= 1 s: {self.retry_delays!r}")
        return delays

    def retry_queue(self, delay: int) -> str:
        return f"{self.work_queue}.retry.{delay}s"

    @property
    def match_kind_set(self) -> frozenset[str] | None:
        """None means every kind."""
        kinds = frozenset(k.strip() for k in self.match_kinds.split(",") if k.strip())
        return None if "*" in kinds else kinds

    @property
    def tracked_from_table(self) -> bool:
        """TRACKED_PLAYERS=table: the set lives in the database (`storage.tracked`)."""
        return self.tracked_players.strip().lower() == "table"

    @property
    def tracked_player_set(self) -> frozenset[str] | None:
        """None means every human player. Not for TRACKED_PLAYERS=table (`storage.tracked`)."""
        ids = frozenset(a.strip() for a in self.tracked_players.split(",") if a.strip())
        return None if "*" in ids else ids - {"none"}

    @property
    def amqp_url(self) -> str:
        if self.rabbitmq_url:
            return self.rabbitmq_url
        vhost = quote(self.rabbitmq_vhost, safe="")
        user = quote(self.rabbitmq_user, safe="")
        password = quote(self.rabbitmq_password, safe="")
        scheme = "amqps" if self.rabbitmq_ca_file or self.rabbitmq_cert_file else "amqp"
        return (
            f"{scheme}://{user}:{password}@{self.rabbitmq_host}:{self.rabbitmq_port}/{vhost}"
        )

    @property
    def conninfo(self) -> str:
        """libpq connection string, the schema first on the search path."""
        from psycopg.conninfo import make_conninfo

        options = f"-c search_path={self.postgres_schema},public"
        if self.database_url:
            return make_conninfo(self.database_url, options=options, application_name="pewproc")
        extra = {"sslrootcert": self.postgres_sslrootcert} if self.postgres_sslrootcert else {}
        return make_conninfo(
            host=self.postgres_host,
            port=self.postgres_port,
            dbname=self.postgres_db,
            user=self.postgres_user,
            password=self.postgres_password or None,
            sslmode=self.postgres_sslmode,
            options=options,
            application_name="pewproc",
            **extra,
        )

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand to another pewproc process."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def describe(self) -> dict[str, Any]:
        """Every setting with secrets masked: safe to log."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = mask_url(value) if "://" in str(value) else "****"
            out[f.metadata["env"]] = value
        return out

    def __repr__(self) -> str:
        return f"Settings({self.describe()!r})"


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = {"int": int, "float": float}.get(str(f.type))
    try:
        return kind(raw.strip()) if kind else raw
    except ValueError:
        raise ValueError(f"{f.metadata['env']} must be a number, got {raw!r}") from None


def mask_url(url: str) -> str:
    """Hide the password of a URL (or of each of a comma-separated list), or of a conninfo, so
    it can be logged."""
    if "://" in url and "," in url:
        return ",".join(mask_url(part) for part in url.split(","))
    if "://" in url:
        parts = urlsplit(url)
        if parts.password:
            parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":****@"))
        query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2****", parts.query)
        return urlunsplit(parts._replace(query=query))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1****", url)


def settings_fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))
