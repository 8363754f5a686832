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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

# Groups of settings: each command lists the groups it uses (pewproc.ops.cli) and shows and reads
# only those. A new setting needs only its field here; without `group` it joins "processing".
GROUPS = ("broker", "queues", "management", "database", "db_pool", "worker", "processing",
          "files", "logging", "metrics")


def _setting(env: str, default: Any, help: str, *, group: str = "processing",
             secret: bool = False, choices: tuple[str, ...] = (), minimum: float | None = None,
             maximum: float | None = None, unit: str = "", path: str = "") -> Any:
    """One setting: its variable, help and group, and what a valid value is.

    `unit` (seconds, bytes) is shown in --help and defaults from the variable's suffix;
    `path` is "dir" or "file" for values that must name an existing one (empty: not set).
    """
    assert group in GROUPS, group
    if not unit and env.endswith(("_SECONDS", "_BYTES")):
        unit = env.rsplit("_", 1)[1].lower()
    return field(default=default, metadata={
        "env": env, "help": help, "secret": secret, "group": group, "choices": choices,
        "minimum": minimum, "maximum": maximum, "unit": unit, "path": path,
    })


class SettingError(ValueError):
    """A setting's value is unusable; the message names its variable and its option."""

    def __init__(self, name: str, problem: str) -> None:
        env = _FIELDS[name].metadata["env"] if name in _FIELDS else name.upper()
        super().__init__(f"{env} (--{name.replace('_', '-')}): {problem}")
        self.env = env


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
        group="broker", secret=True,
    )
    rabbitmq_host: str = _setting("RABBITMQ_HOST", "localhost", "Broker host.", group="broker")
    rabbitmq_port: int = _setting(
        "RABBITMQ_PORT", 5672, "Broker port.", group="broker", minimum=1, maximum=65535
    )
    rabbitmq_user: str = _setting("RABBITMQ_USER", "guest", "Broker user.", group="broker")
    rabbitmq_password: str = _setting(
        "RABBITMQ_PASSWORD", "guest", "Broker password.", group="broker", secret=True
    )
    rabbitmq_vhost: str = _setting("RABBITMQ_VHOST", "/", "Broker virtual host.", group="broker")
    rabbitmq_heartbeat: int = _setting(
        "RABBITMQ_HEARTBEAT", 60,
        "AMQP heartbeat interval proposed to the broker, in seconds (0: none).",
        group="broker", minimum=0, unit="seconds",
    )
    rabbitmq_ca_file: str = _setting(
        "RABBITMQ_CA_FILE", "", "CA bundle for amqps:// (empty: the system's trust store).",
        group="broker", path="file",
    )
    rabbitmq_cert_file: str = _setting(
        "RABBITMQ_CERT_FILE", "", "Client certificate for amqps:// (PEM, optional).",
        group="broker", path="file",
    )
    rabbitmq_key_file: str = _setting(
        "RABBITMQ_KEY_FILE", "", "Client key for amqps:// (PEM, optional).",
        group="broker", path="file",
    )
    rabbitmq_management_url: str = _setting(
        "RABBITMQ_MANAGEMENT_URL", "",
        "Management API base URL (e.g. http://localhost:15672); lets `queue stats` show unacked.",
        group="management",
    )
    environment: str = _setting(
        "ENVIRONMENT", "development", "Names the queues: match.processing.{ENVIRONMENT}.",
        group="queues",
    )
    prefetch_count: int = _setting(
        "PREFETCH_COUNT", 0, "Unacknowledged deliveries allowed in flight (0: the pool size).",
        group="worker", minimum=0,
    )

    # Database
    database_url: str = _setting(
        "DATABASE_URL", "", "Full PostgreSQL URL or conninfo; overrides the POSTGRES_* parts.",
        group="database", secret=True,
    )
    postgres_host: str = _setting("POSTGRES_HOST", "localhost", "Database host.", group="database")
    postgres_port: int = _setting(
        "POSTGRES_PORT", 5432, "Database port.", group="database", minimum=1, maximum=65535
    )
    postgres_db: str = _setting("POSTGRES_DB", "postgres", "Database name.", group="database")
    postgres_user: str = _setting("POSTGRES_USER", "postgres", "Database user.", group="database")
    postgres_password: str = _setting(
        "POSTGRES_PASSWORD", "", "Database password.", group="database", secret=True
    )
    postgres_sslmode: str = _setting(
        "POSTGRES_SSLMODE", "prefer", "libpq sslmode.", group="database",
        choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    )
    postgres_sslrootcert: str = _setting(
        "POSTGRES_SSLROOTCERT", "", "CA file used to verify the database server (verify-ca/full).",
        group="database", path="file",
    )
    postgres_schema: str = _setting(
        "POSTGRES_SCHEMA", "pewproc", "PostgreSQL schema that holds pewproc's tables.",
        group="database",
    )
    db_pool_min_size: int = _setting(
        "DB_POOL_MIN_SIZE", 1, "Connections each child keeps open.", group="db_pool", minimum=1
    )
    db_pool_max_size: int = _setting(
        "DB_POOL_MAX_SIZE", 2, "Connections each child may open at most.", group="db_pool",
        minimum=1,
    )
    db_pool_timeout: float = _setting(
        "DB_POOL_TIMEOUT_SECONDS", 10.0,
        "How long a task waits for a database connection before failing as transient.",
        group="db_pool", minimum=0.001,
    )

    # Worker
    worker_id: str = _setting(
        "WORKER_ID", "", "Name of this worker in logs, headers and the matches table "
        "(empty: pewproc-{hostname}).", group="worker",
    )
    worker_pool_size: int = _setting(
        "WORKER_POOL_SIZE", 0, "Child processes that parse matches (0: the CPUs available).",
        group="worker", minimum=0,
    )
    processing_mode: str = _setting(
        "PROCESSING_MODE", "parallel",
        "parallel (process pool) or sequential (one match at a time in the main process: the "
        "rollback switch).", group="worker", choices=("parallel", "sequential"),
    )
    startup_timeout: float = _setting(
        "STARTUP_TIMEOUT_SECONDS", 300.0,
        "How long start-up waits for the broker and the database before exiting with an error "
        "(0: forever).", group="worker", minimum=0,
    )
    shutdown_timeout: float = _setting(
        "SHUTDOWN_TIMEOUT_SECONDS", 60.0,
        "On SIGTERM, how long in-flight matches may run before the worker exits anyway.",
        group="worker", minimum=0,
    )
    task_timeout: float = _setting(
        "TASK_TIMEOUT_SECONDS", 300.0,
        "A match still running after this long has its child replaced and is retried.",
        group="worker", minimum=0.001,
    )
    max_tasks_per_child: int = _setting(
        "MAX_TASKS_PER_CHILD", 500, "Replace the children after about this many matches each "
        "(0: never).", group="worker", minimum=0,
    )
    max_retries: int = _setting(
        "MAX_RETRIES", 5, "Retries of a transient failure before the message is dead-lettered.",
        group="worker", minimum=0,
    )
    retry_delays: str = _setting(
        "RETRY_DELAYS", "5,30,120,600",
        "Comma-separated waits before retry 1, 2, ... in seconds (the last one repeats).",
        group="queues", unit="seconds",
    )

    # Telemetry
    telemetry_root: str = _setting(
        "TELEMETRY_ROOT", ".", "Directory every file_path must resolve into (symlinks included).",
        group="files", path="dir",
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
        "With TRACKED_PLAYERS=table, how often each worker process re-reads the table.",
        minimum=0,
    )
    max_message_bytes: int = _setting(
        "MAX_MESSAGE_BYTES", 65536, "Largest message body accepted.", minimum=1,
    )
    max_file_bytes: int = _setting(
        "MAX_FILE_BYTES", 200_000_000, "Largest telemetry file accepted, as stored on disk.",
        minimum=1,
    )
    max_json_bytes: int = _setting(
        "MAX_JSON_BYTES", 200_000_000,
        "Largest telemetry JSON accepted after decompression (a child's peak memory is about "
        "12x this; see docs/deployment.md).", minimum=1,
    )
    max_events: int = _setting(
        "MAX_EVENTS", 1_000_000, "Most events accepted in one match.", minimum=1
    )
    file_settle_seconds: float = _setting(
        "FILE_SETTLE_SECONDS", 60.0,
        "A cut-off file modified less than this many seconds ago is retried as still being "
        "written (file_incomplete) instead of dead-lettered as truncated.",
        group="files", minimum=0,
    )

    # Operator surface
    log_level: str = _setting(
        "LOG_LEVEL", "INFO", "Least severe log level shown.", group="logging",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    log_format: str = _setting(
        "LOG_FORMAT", "text", "text, or json (one JSON object per line).", group="logging",
        choices=("text", "json"),
    )
    metrics_port: int = _setting(
        "METRICS_PORT", 9093, "Port of /metrics, /healthz and /readyz (0: no HTTP server).",
        group="metrics", minimum=0, maximum=65535,
    )
    metrics_addr: str = _setting(
        "METRICS_ADDR", "127.0.0.1", "Address the metrics server binds (0.0.0.0 in containers).",
        group="metrics",
    )
    stats_interval: float = _setting(
        "STATS_INTERVAL_SECONDS", 60.0, "Period of the stats log line and of queue depth polls.",
        group="metrics", minimum=0.001,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.db_pool_min_size > self.db_pool_max_size:
            raise SettingError("db_pool_min_size", f"{self.db_pool_min_size} is more than "
                               f"DB_POOL_MAX_SIZE ({self.db_pool_max_size})")
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.postgres_schema):
            raise SettingError("postgres_schema", "must be a lower-case identifier (letters, "
                               f"digits, _), got {self.postgres_schema!r}")
        self.retry_delay_list  # noqa: B018 - validates RETRY_DELAYS early
        if self.rabbitmq_url:
            for url in self.rabbitmq_url.split(","):  # one URL per node of a cluster
                if url.strip():
                    _check_amqp_url(url.strip())
        if self.database_url:
            _check_database_url(self.database_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 groups: Collection[str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default: os.environ); `overrides` win over both.

        With `groups`, only the variables of those groups are read (the others keep their
        defaults), so a command is not refused for a setting it does not use.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if groups is not None and f.metadata["group"] not in groups:
                continue
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = convert(f, raw)
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
            raise SettingError("retry_delays",
                               f"must be whole seconds, got {self.retry_delays!r}") from None
        if not delays or min(delays) < 1:
            raise SettingError("retry_delays",
                               f"needs at least one delay >= 1 s, got {self.retry_delays!r}")
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
    def broker_address(self) -> str:
        """host:port/vhost of the broker (of each node, comma-separated), for messages (no
        credentials)."""
        addresses = []
        for url in filter(None, (u.strip() for u in self.amqp_url.split(","))):
            parts = urlsplit(url)
            port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
            addresses.append(f"{parts.hostname or 'localhost'}:{port}/{parts.path[1:] or '%2F'}")
        return ",".join(addresses)

    @property
    def database_address(self) -> str:
        """host:port/dbname of the database, for messages (no credentials)."""
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.conninfo)
        host = params.get("host") or params.get("hostaddr") or "localhost"
        return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user')}"

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


def convert(f: dataclasses.Field[Any], raw: str) -> Any:
    """A variable's or an option's text as the field's type; a choice in its canonical case."""
    raw = raw.strip()
    kind = {"int": int, "float": float}.get(str(f.type))
    if kind is None:
        folded = {c.lower(): c for c in f.metadata["choices"]}
        return folded.get(raw.lower(), raw)
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingError(f.name, f"must be {what}, got {raw!r}") from None


def _check_field(f: dataclasses.Field[Any], value: Any) -> None:
    """The checks a field declares: choices, range, and paths that must exist."""
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise SettingError(f.name, f"must be one of {', '.join(meta['choices'])}; got {value!r}")
    low, high = meta["minimum"], meta["maximum"]
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low:g} and {high:g}" if high is not None
                  else "at least 0" if low == 0 else "positive" if low <= 1 else f">= {low:g}")
        raise SettingError(f.name, f"must be {bounds}, got {value!r}")
    if meta["path"] and value:
        path = Path(value)
        if meta["path"] == "dir":
            if not path.is_dir():
                raise SettingError(f.name, f"{value!r} is not a directory")
            if not os.access(path, os.R_OK | os.X_OK):
                raise SettingError(f.name, f"directory {value!r} is not readable")
        elif not path.is_file() or not os.access(path, os.R_OK):
            raise SettingError(f.name, f"{value!r} is not a readable file")


def _check_amqp_url(url: str) -> None:
    """What pika would refuse later, refused now: scheme, port, host."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise SettingError("rabbitmq_url", f"must start with amqp:// or amqps://, got "
                           f"{mask_url(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise SettingError("rabbitmq_url", f"the port is not a number in 1..65535: "
                           f"{mask_url(url)!r}") from None
    if not parts.hostname or port == 0:
        raise SettingError("rabbitmq_url", f"needs a host and a port of 1..65535: "
                           f"{mask_url(url)!r}")


def _check_database_url(url: str) -> None:
    """libpq's own parser, plus the port check it leaves to connection time."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except ProgrammingError as exc:
        raise SettingError("database_url", f"cannot be parsed ({str(exc).strip()}): "
                           f"{mask_url(url)!r}") from None
    for port in str(params.get("port", "5432")).split(","):
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingError("database_url", f"port {port!r} is not a number in 1..65535")
    if params.get("sslmode", "prefer") not in _FIELDS["postgres_sslmode"].metadata["choices"]:
        raise SettingError("database_url", f"unknown sslmode {params['sslmode']!r}")


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


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
