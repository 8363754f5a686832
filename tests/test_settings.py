"""Unit tests of pewproc.settings: defaults, environment parsing, validation, derived values and
the masking of secrets. Pure: no broker, no database."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

from pewproc.settings import GROUPS, SettingError, Settings, mask_url, settings_fields
from tests.support import run_obeying_file_modes

SECRET = "s3cr3t-Pa55"


def make(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    return Settings.from_env(env or {}, **overrides)


@pytest.fixture
def pem(tmp_path: Path) -> str:
    """A certificate file that exists (its content is not read by the settings)."""
    path = tmp_path / "ca.pem"
    path.write_text("")
    return str(path)


# Defaults


def test_defaults_with_an_empty_environment_name_the_development_queues() -> None:
    s = make()
    assert s.environment == "development"
    assert s.work_queue == "match.processing.development"
    assert s.dead_letter_queue == "match.processing.development.dlq"


def test_retry_queues_are_named_after_each_delay_of_retry_delays() -> None:
    s = make()
    assert s.retry_delay_list == (5, 30, 120, 600)
    assert [s.retry_queue(d) for d in s.retry_delay_list] == [
        "match.processing.development.retry.5s",
        "match.processing.development.retry.30s",
        "match.processing.development.retry.120s",
        "match.processing.development.retry.600s",
    ]


def test_pool_size_defaults_to_the_cpus_available_and_prefetch_to_the_pool_size() -> None:
    s = make()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert s.worker_pool_size == 0
    assert s.pool_size == cpus
    assert s.prefetch == cpus


def test_explicit_pool_size_and_prefetch_are_used_in_parallel_mode() -> None:
    s = make(worker_pool_size=3)
    assert (s.pool_size, s.prefetch) == (3, 3)
    s = make(worker_pool_size=3, prefetch_count=7)
    assert (s.pool_size, s.prefetch) == (3, 7)


def test_sequential_mode_forces_pool_size_one_and_prefetch_one() -> None:
    s = make(processing_mode="sequential", worker_pool_size=8, prefetch_count=16)
    assert s.pool_size == 1
    assert s.prefetch == 1


def test_worker_name_defaults_to_the_hostname_and_worker_id_wins() -> None:
    import socket

    assert make().worker_name == f"pewproc-{socket.gethostname()}"
    assert make(worker_id="w-7").worker_name == "w-7"


# Environment parsing


def test_environment_values_are_converted_to_the_field_types() -> None:
    s = make({
        "RABBITMQ_PORT": " 5673 ",
        "WORKER_POOL_SIZE": "4",
        "TASK_TIMEOUT_SECONDS": "12.5",
        "SHUTDOWN_TIMEOUT_SECONDS": "3",
        "ENVIRONMENT": "prod",
        "RABBITMQ_HOST": "mq.internal",
        "MAX_EVENTS": "10",
    })
    assert s.rabbitmq_port == 5673 and isinstance(s.rabbitmq_port, int)
    assert s.worker_pool_size == 4
    assert s.task_timeout == 12.5 and isinstance(s.task_timeout, float)
    assert s.shutdown_timeout == 3.0 and isinstance(s.shutdown_timeout, float)
    assert s.environment == "prod"
    assert s.work_queue == "match.processing.prod"
    assert s.rabbitmq_host == "mq.internal"
    assert s.max_events == 10


def test_an_empty_environment_variable_means_the_default() -> None:
    s = make({"RABBITMQ_PORT": "", "ENVIRONMENT": ""})
    assert s.rabbitmq_port == 5672
    assert s.environment == "development"


def test_from_env_reads_os_environ_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "from-os-environ")
    assert Settings.from_env().environment == "from-os-environ"


def test_overrides_win_over_the_environment() -> None:
    s = make({"ENVIRONMENT": "prod", "WORKER_POOL_SIZE": "4"}, environment="staging",
             worker_pool_size=2)
    assert s.environment == "staging"
    assert s.worker_pool_size == 2


def test_none_overrides_are_ignored() -> None:
    s = make({"ENVIRONMENT": "prod"}, environment=None, worker_pool_size=None)
    assert s.environment == "prod"
    assert s.worker_pool_size == 0


def test_every_field_names_a_distinct_environment_variable() -> None:
    envs = [f.metadata["env"] for f in settings_fields()]
    assert len(envs) == len(set(envs))
    assert "WORKER_POOL_SIZE" in envs and "RABBITMQ_HOST" in envs


# Validation


def test_unknown_processing_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="PROCESSING_MODE"):
        make({"PROCESSING_MODE": "threads"})


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("RABBITMQ_PORT", "abc"),
        ("WORKER_POOL_SIZE", "2.5"),
        ("MAX_RETRIES", "five"),
        ("TASK_TIMEOUT_SECONDS", "soon"),
        ("STATS_INTERVAL_SECONDS", "1s"),
    ],
)
def test_a_bad_number_names_its_environment_variable(var: str, raw: str) -> None:
    with pytest.raises(ValueError, match=var) as info:
        make({var: raw})
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize("var", ["WORKER_POOL_SIZE", "PREFETCH_COUNT"])
def test_negative_pool_size_or_prefetch_is_refused(var: str) -> None:
    with pytest.raises(ValueError, match=f"{var} .*must be at least 0, got -1"):
        make({var: "-1"})


@pytest.mark.parametrize(("low", "high"), [(0, 2), (3, 2), (-1, 1)])
def test_db_pool_sizes_must_satisfy_one_le_min_le_max(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="DB_POOL_MIN_SIZE"):
        make(db_pool_min_size=low, db_pool_max_size=high)


def test_db_pool_min_equal_to_max_is_accepted() -> None:
    s = make(db_pool_min_size=2, db_pool_max_size=2)
    assert (s.db_pool_min_size, s.db_pool_max_size) == (2, 2)


@pytest.mark.parametrize("schema", ["bad-schema", "x; DROP TABLE t", "", "1abc", "a b"])
def test_postgres_schema_must_be_an_identifier(schema: str) -> None:
    with pytest.raises(ValueError, match="POSTGRES_SCHEMA"):
        make(postgres_schema=schema)


def test_a_mixed_case_schema_is_refused_or_quoted_in_search_path() -> None:
    try:
        s = make(postgres_schema="MySchema")
    except ValueError:
        return  # refusing it is a fine fix
    options = conninfo_to_dict(s.conninfo)["options"]
    assert '"MySchema"' in options


@pytest.mark.parametrize("delays", ["", "0", "5,0", "-5", "abc", "5,x", "1.5", " , "])
def test_bad_retry_delays_are_refused(delays: str) -> None:
    with pytest.raises(ValueError, match="RETRY_DELAYS"):
        make(retry_delays=delays)


def test_retry_delays_tolerate_spaces_and_empty_parts() -> None:
    assert make(retry_delays=" 1 , 2,,3 ").retry_delay_list == (1, 2, 3)


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="MAX_RETRIES"):
        make({"MAX_RETRIES": "-1"})


def test_tracked_players_table_and_its_refresh() -> None:
    assert make({"TRACKED_PLAYERS": " Table "}).tracked_from_table
    assert not make({"TRACKED_PLAYERS": "account.1,account.2"}).tracked_from_table
    assert make({}).tracked_players_refresh == 300.0
    with pytest.raises(ValueError, match="TRACKED_PLAYERS_REFRESH_SECONDS"):
        make({"TRACKED_PLAYERS_REFRESH_SECONDS": "-1"})


@pytest.mark.parametrize("fmt", ["xml", "JSON", ""])
def test_log_format_must_be_text_or_json(fmt: str) -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        make(log_format=fmt)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL (--log-level): must be one of DEBUG, INFO"),
        ({"POSTGRES_SSLMODE": "always"}, "POSTGRES_SSLMODE (--postgres-sslmode): must be one of"),
        ({"RABBITMQ_HEARTBEAT": "-5"}, "RABBITMQ_HEARTBEAT (--rabbitmq-heartbeat): must be at "
                                       "least 0, got -5"),
        ({"RABBITMQ_PORT": "0"}, "RABBITMQ_PORT (--rabbitmq-port): must be between 1 and 65535"),
        ({"POSTGRES_PORT": "70000"}, "POSTGRES_PORT (--postgres-port): must be between 1 and"),
        ({"METRICS_PORT": "65536"}, "METRICS_PORT (--metrics-port): must be between 0 and 65535"),
        ({"TASK_TIMEOUT_SECONDS": "0"}, "TASK_TIMEOUT_SECONDS (--task-timeout): must be positive"),
        ({"DB_POOL_TIMEOUT_SECONDS": "-1"}, "DB_POOL_TIMEOUT_SECONDS (--db-pool-timeout): must be"),
        ({"STATS_INTERVAL_SECONDS": "0"}, "STATS_INTERVAL_SECONDS (--stats-interval): must be"),
        ({"STARTUP_TIMEOUT_SECONDS": "-1"}, "STARTUP_TIMEOUT_SECONDS (--startup-timeout): must be"),
        ({"MAX_JSON_BYTES": "0"}, "MAX_JSON_BYTES (--max-json-bytes): must be positive"),
        ({"TELEMETRY_ROOT": "/nonexistent"}, "TELEMETRY_ROOT (--telemetry-root): '/nonexistent' "
                                             "is not a directory"),
        ({"RABBITMQ_CA_FILE": "/nonexistent.pem"}, "RABBITMQ_CA_FILE (--rabbitmq-ca-file): "
                                                   "'/nonexistent.pem' is not a readable file"),
        ({"RABBITMQ_CERT_FILE": "/no.pem"}, "RABBITMQ_CERT_FILE (--rabbitmq-cert-file)"),
        ({"RABBITMQ_KEY_FILE": "/no.pem"}, "RABBITMQ_KEY_FILE (--rabbitmq-key-file)"),
        ({"POSTGRES_SSLROOTCERT": "/no.pem"}, "POSTGRES_SSLROOTCERT (--postgres-sslrootcert)"),
        ({"DATABASE_URL": "host=db port=notaport"}, "DATABASE_URL (--database-url): port "
                                                    "'notaport' is not a number"),
        ({"DATABASE_URL": "postgresql://u:pw@db:notaport/x"}, "port 'notaport' is not a number"),
        ({"DATABASE_URL": "hots=db"}, "DATABASE_URL (--database-url): cannot be parsed"),
        ({"DATABASE_URL": "host=db sslmode=sometimes"}, "unknown sslmode 'sometimes'"),
        ({"RABBITMQ_URL": "http://broker/"}, "RABBITMQ_URL (--rabbitmq-url): must start with "
                                             "amqp:// or amqps://"),
        ({"RABBITMQ_URL": "amqp://u:pw@broker:notaport/"}, "RABBITMQ_URL (--rabbitmq-url): the "
                                                           "port is not a number"),
        ({"RABBITMQ_URL": "amqp:///vhost"}, "RABBITMQ_URL (--rabbitmq-url): needs a host"),
    ],
)
def test_every_bad_value_is_refused_naming_its_variable_and_option(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingError) as info:
        make(env)
    assert problem in str(info.value)
    assert "pw" not in str(info.value).replace("port", ""), "a password leaked into the error"


def test_choices_are_case_insensitive_and_stored_in_their_canonical_case() -> None:
    s = make({"LOG_LEVEL": "debug", "PROCESSING_MODE": "Sequential", "LOG_FORMAT": "JSON"})
    assert (s.log_level, s.processing_mode, s.log_format) == ("DEBUG", "sequential", "json")


def test_a_readable_telemetry_root_and_existing_certificate_files_are_accepted(
    tmp_path: Path, pem: str,
) -> None:
    s = make({"TELEMETRY_ROOT": str(tmp_path), "RABBITMQ_CA_FILE": pem,
              "POSTGRES_SSLROOTCERT": pem})
    assert s.telemetry_root == str(tmp_path)


def test_an_unreadable_telemetry_root_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        result = run_obeying_file_modes(
            "import sys; from pewproc.settings import Settings, SettingError\n"
            "try:\n    Settings.from_env({'TELEMETRY_ROOT': sys.argv[1]})\n"
            "except SettingError as exc:\n    print(exc)\n", str(locked))
        assert "TELEMETRY_ROOT (--telemetry-root)" in result.stdout, result.stderr
        assert "is not readable" in result.stdout
    finally:
        locked.chmod(0o700)


def test_every_setting_belongs_to_a_known_group() -> None:
    assert {f.metadata["group"] for f in settings_fields()} <= set(GROUPS)


def test_from_env_with_groups_reads_only_the_variables_of_those_groups() -> None:
    s = Settings.from_env({"LOG_LEVEL": "verbose", "POSTGRES_HOST": "db"}, groups=["database"])
    assert s.postgres_host == "db" and s.log_level == "INFO"


def test_settings_are_frozen_and_replace_validates() -> None:
    s = make()
    with pytest.raises(AttributeError):
        s.environment = "prod"  # type: ignore[misc]
    assert s.replace(environment="prod").work_queue == "match.processing.prod"
    with pytest.raises(ValueError, match="PROCESSING_MODE"):
        s.replace(processing_mode="nope")


# AMQP URL


def test_amqp_url_from_default_parts_quotes_the_root_vhost() -> None:
    assert make().amqp_url == "amqp://guest:guest@localhost:5672/%2F"


def test_amqp_url_quotes_special_characters_of_user_password_and_vhost() -> None:
    user, password, vhost = "us@r:x/y", "p@ss:w/rd?#%", "/prod vhost"
    s = make(rabbitmq_user=user, rabbitmq_password=password, rabbitmq_vhost=vhost,
             rabbitmq_host="mq", rabbitmq_port=5671)
    parts = urlsplit(s.amqp_url)
    assert parts.scheme == "amqp"
    assert parts.hostname == "mq" and parts.port == 5671
    assert unquote(parts.username or "") == user
    assert unquote(parts.password or "") == password
    assert unquote(parts.path[1:]) == vhost
    assert "?" not in s.amqp_url and "#" not in s.amqp_url


def test_amqp_url_is_amqps_when_a_ca_or_client_cert_is_configured(pem: str) -> None:
    assert make(rabbitmq_ca_file=pem).amqp_url.startswith("amqps://")
    assert make(rabbitmq_cert_file=pem).amqp_url.startswith("amqps://")


def test_rabbitmq_url_overrides_the_parts() -> None:
    url = "amqps://u:p@broker.example:5671/vh"
    s = make({"RABBITMQ_URL": url, "RABBITMQ_HOST": "ignored", "RABBITMQ_PASSWORD": "ignored"})
    assert s.amqp_url == url


# PostgreSQL conninfo


def test_conninfo_from_parts_has_the_schema_first_on_the_search_path() -> None:
    s = make(postgres_host="db", postgres_port=6543, postgres_db="stats", postgres_user="pew",
             postgres_password=SECRET, postgres_schema="telemetry", postgres_sslmode="require")
    d = conninfo_to_dict(s.conninfo)
    assert d["host"] == "db"
    assert d["port"] == "6543"
    assert d["dbname"] == "stats"
    assert d["user"] == "pew"
    assert d["password"] == SECRET
    assert d["sslmode"] == "require"
    assert d["options"] == "-c search_path=telemetry,public"
    assert d["application_name"] == "pewproc"
    assert "sslrootcert" not in d


def test_conninfo_omits_an_empty_password_and_includes_sslrootcert_when_set(pem: str) -> None:
    d = conninfo_to_dict(make(postgres_sslrootcert=pem).conninfo)
    assert "password" not in d
    assert d["sslrootcert"] == pem


def test_conninfo_quotes_a_password_with_spaces_and_quotes() -> None:
    password = "pa ss'w\\d"
    assert conninfo_to_dict(make(postgres_password=password).conninfo)["password"] == password


@pytest.mark.parametrize(
    "url",
    ["postgresql://pew:s3cr3t-Pa55@db.example:6543/stats",
     "host=db.example port=6543 dbname=stats user=pew password=s3cr3t-Pa55"],
)
def test_database_url_wins_over_the_parts_and_keeps_the_search_path(url: str) -> None:
    s = make(database_url=url, postgres_host="ignored", postgres_db="ignored",
             postgres_schema="telemetry")
    d = conninfo_to_dict(s.conninfo)
    assert d["host"] == "db.example"
    assert d["port"] == "6543"
    assert d["dbname"] == "stats"
    assert d["password"] == SECRET
    assert d["options"] == "-c search_path=telemetry,public"
    assert d["application_name"] == "pewproc"


# Secrets never shown


def _shown(s: Settings) -> str:
    return f"{s.describe()!r} {s!r} {s!s}"


def test_describe_and_repr_mask_the_passwords_given_as_parts() -> None:
    s = make(rabbitmq_password=SECRET, postgres_password=SECRET + "-pg")
    shown = _shown(s)
    assert SECRET not in shown
    assert s.describe()["RABBITMQ_PASSWORD"] == "****"
    assert s.describe()["POSTGRES_PASSWORD"] == "****"


def test_describe_keys_are_the_environment_variable_names() -> None:
    d = make().describe()
    assert set(d) == {f.metadata["env"] for f in settings_fields()}
    assert d["WORKER_POOL_SIZE"] == 0
    assert d["RABBITMQ_HOST"] == "localhost"


def test_describe_leaves_empty_secrets_empty_and_non_secrets_visible() -> None:
    d = make(rabbitmq_user="visible-user").describe()
    assert d["POSTGRES_PASSWORD"] == ""
    assert d["RABBITMQ_URL"] == ""
    assert d["RABBITMQ_USER"] == "visible-user"


@pytest.mark.parametrize(
    ("field", "url", "kept"),
    [
        ("rabbitmq_url", f"amqps://pew:{SECRET}@mq.example:5671/prod", "mq.example:5671/prod"),
        ("database_url", f"postgresql://pew:{SECRET}@db.example:5432/stats", "db.example"),
        ("database_url", f"postgresql://pew:{SECRET}@h1:5432,h2:5432/stats", "h1:5432,h2"),
    ],
)
def test_describe_masks_the_password_of_urls_but_keeps_the_rest(
    field: str, url: str, kept: str
) -> None:
    s = make(**{field: url})
    shown = _shown(s)
    assert SECRET not in shown
    assert "pew:****@" in shown
    assert kept in shown


@pytest.mark.parametrize(
    "conninfo",
    [
        f"host=db password={SECRET} user=pew",
        f"host=db password = '{SECRET} with space' user=pew",
        f"password={SECRET}",
    ],
)
def test_describe_hides_a_conninfo_database_url(conninfo: str) -> None:
    s = make(database_url=conninfo)
    assert SECRET not in _shown(s)
    assert s.describe()["DATABASE_URL"]  # shown as something, not dropped


def test_describe_masks_a_password_given_as_a_url_query_parameter() -> None:
    s = make(database_url=f"postgresql://pew@db.example/stats?sslmode=require&password={SECRET}")
    assert SECRET in s.conninfo  # libpq does take it as the password
    assert SECRET not in _shown(s)


def test_mask_url_hides_the_password_of_a_url() -> None:
    assert mask_url("amqp://guest:guest@h:5672/%2F") == "amqp://guest:****@h:5672/%2F"
    assert mask_url("amqp://us%40er:p%40ss@h/v") == "amqp://us%40er:****@h/v"


def test_mask_url_leaves_a_url_without_password_unchanged() -> None:
    assert mask_url("amqp://user@h/v") == "amqp://user@h/v"
    assert mask_url("amqp://h/v") == "amqp://h/v"


def test_mask_url_hides_the_password_of_a_conninfo() -> None:
    assert mask_url("host=db password=abc user=u") == "host=db password=**** user=u"
    assert mask_url("host=db password = 'a b c' user=u") == "host=db password = **** user=u"


def test_mask_url_hides_a_quoted_conninfo_password_with_an_escaped_quote() -> None:
    masked = mask_url(r"host=db password='ab\'tail' user=u")
    assert "tail" not in masked
    assert masked.endswith("user=u")


# Match kinds and tracked players


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("official,competitive", frozenset({"official", "competitive"})),
        (" official , custom ,, ", frozenset({"official", "custom"})),
        ("*", None),
        ("official,*", None),
        ("", frozenset()),
        (" , ", frozenset()),
    ],
)
def test_match_kind_set(raw: str, expected: frozenset[str] | None) -> None:
    assert make(match_kinds=raw).match_kind_set == expected


def test_match_kind_set_default_is_official_and_competitive() -> None:
    assert make().match_kind_set == frozenset({"official", "competitive"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("*", None),
        ("account.a, account.b ", frozenset({"account.a", "account.b"})),
        ("account.a,,", frozenset({"account.a"})),
        ("", frozenset()),
    ],
)
def test_tracked_player_set(raw: str, expected: frozenset[str] | None) -> None:
    assert make(tracked_players=raw).tracked_player_set == expected


def test_tracked_players_default_is_everyone_and_an_empty_override_is_nobody() -> None:
    assert make().tracked_player_set is None
    assert make(tracked_players="").tracked_player_set == frozenset()


def test_tracked_players_none_means_nobody_as_its_help_says() -> None:
    help_text = next(f for f in settings_fields() if f.name == "tracked_players").metadata["help"]
    assert "'none': nobody" in help_text
    assert make({"TRACKED_PLAYERS": "none"}).tracked_player_set == frozenset()


@pytest.mark.parametrize(("content", "cpus"), [
    ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None),
    ("garbage\n", None),
])
def test_a_cgroup_cpu_quota_caps_the_default_pool_size(
    tmp_path: Path, content: str, cpus: int | None
) -> None:
    from pewproc.settings import _cgroup_cpu_quota

    path = tmp_path / "cpu.max"
    path.write_text(content)
    assert _cgroup_cpu_quota(str(path)) == cpus
    assert _cgroup_cpu_quota(str(tmp_path / "missing")) is None
