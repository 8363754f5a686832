"""The schema and the one-transaction write, against a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from pewproc.settings import Settings
from pewproc.storage.migrate import migrate, migration_files
from pewproc.storage.writer import record_unsuccessful, store_match
from pewproc.telemetry.extract import output_tables
from pewproc.telemetry.model import Table

# What binary COPY type names are called in information_schema.
_DB_TYPE = {"text": "text", "int4": "integer", "int8": "bigint", "float8": "double precision",
            "bool": "boolean", "timestamptz": "timestamp with time zone"}


@pytest.fixture
def fresh_schema(database: str) -> Iterator[tuple[str, str]]:
    """(conninfo, schema) of a schema no test has migrated yet."""
    schema = f"s_{uuid.uuid4().hex[:10]}"
    conninfo = Settings.from_env({}, database_url=database, postgres_schema=schema).conninfo
    yield conninfo, schema
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_migrate_applies_each_version_once_even_when_two_race(
    fresh_schema: tuple[str, str],
) -> None:
    conninfo, schema = fresh_schema
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(conninfo, schema)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = [v for v, _ in migration_files()]
    assert sorted(results, key=len) == [[], versions]
    assert migrate(conninfo, schema) == []
    with psycopg.connect(conninfo) as conn:
        applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert applied == versions


@pytest.mark.parametrize("table", output_tables(), ids=lambda t: t.name)
def test_every_output_table_has_the_columns_and_types_extraction_writes(
    settings: Settings, db: psycopg.Connection, table: Table,
) -> None:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (settings.postgres_schema, table.name),
    ).fetchall()
    assert rows == [(c.name, _DB_TYPE[c.pg_type]) for c in table.columns]
    indexes = db.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                         (settings.postgres_schema, table.name)).fetchall()
    assert any("(match_id)" in i[0] for i in indexes), f"{table.name} needs an index on match_id"


def landing_row(match_id: str, seq: int) -> tuple:
    return (match_id, seq, "account.a", "A", 1, False, datetime.now(UTC), 0.1, 1.0, 2.0, 3.0,
            None, 4.5)


def matches_row(db: psycopg.Connection, match_id: str) -> tuple:
    return db.execute(
        "SELECT status, error_reason, rows_written, times_processed, last_error_reason,"
        " last_attempt, last_failed_at IS NOT NULL FROM pewproc.matches WHERE match_id = %s",
        (match_id,)).fetchone()


def test_storing_a_match_again_replaces_its_rows(
    settings: Settings, db: psycopg.Connection,
) -> None:
    tables = output_tables()
    with psycopg.connect(settings.conninfo) as conn:
        written = store_match(conn, "st-1", {}, tables,
                              {"landings": [landing_row("st-1", 1), landing_row("st-1", 2)]})
        assert written == 2
        store_match(conn, "st-1", {}, tables, {"landings": [landing_row("st-1", 1)]})
    count = "SELECT count(*) FROM pewproc.landings WHERE match_id = 'st-1'"
    assert db.execute(count).fetchone()[0] == 1
    assert matches_row(db, "st-1")[:4] == ("completed", None, 1, 2)


@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_a_later_failure_or_skip_never_touches_an_earlier_success(
    settings: Settings, db: psycopg.Connection, status: str,
) -> None:
    match_id = f"st-keep-{status}"
    tables = output_tables()
    with psycopg.connect(settings.conninfo) as conn:
        store_match(conn, match_id, {"attempt": 1}, tables,
                    {"landings": [landing_row(match_id, 1), landing_row(match_id, 2)]})
        record_unsuccessful(conn, match_id, status, "file_missing", "gone", {"attempt": 3})
    assert db.execute("SELECT count(*) FROM pewproc.landings WHERE match_id = %s",
                      (match_id,)).fetchone()[0] == 2
    assert matches_row(db, match_id) == ("completed", None, 2, 1, "file_missing", 3, True)


def test_a_match_that_never_succeeded_is_failed_and_counts_no_write(
    settings: Settings, db: psycopg.Connection,
) -> None:
    with psycopg.connect(settings.conninfo) as conn:
        record_unsuccessful(conn, "st-never", "failed", "truncated", "cut", {"attempt": 1})
        record_unsuccessful(conn, "st-never", "failed", "corrupt_gzip", "bad", {"attempt": 2})
    assert matches_row(db, "st-never") == ("failed", "corrupt_gzip", 0, 0, "corrupt_gzip", 2,
                                           True)
    # and a success afterwards takes over, with its own rows
    with psycopg.connect(settings.conninfo) as conn:
        store_match(conn, "st-never", {}, output_tables(),
                    {"landings": [landing_row("st-never", 1)]})
    assert matches_row(db, "st-never")[:4] == ("completed", None, 1, 1)


def test_a_row_that_does_not_fit_rolls_back_the_whole_match(
    settings: Settings, db: psycopg.Connection,
) -> None:
    tables = output_tables()
    with psycopg.connect(settings.conninfo) as conn:
        store_match(conn, "st-2", {"status": "completed"}, tables,
                    {"landings": [landing_row("st-2", 1)]})
        bad = (*landing_row("st-2", 2)[:3], "nul\x00name", *landing_row("st-2", 2)[4:])
        with pytest.raises(psycopg.DataError):
            store_match(conn, "st-2", {"status": "completed"}, tables,
                        {"landings": [landing_row("st-2", 3), bad]})
    assert db.execute("SELECT landing_seq FROM pewproc.landings WHERE match_id = 'st-2'"
                      ).fetchall() == [(1,)]


def test_the_least_privilege_roles_of_the_security_doc_are_enough(
    settings: Settings, database: str, fresh_schema: tuple[str, str],
) -> None:
    _, schema = fresh_schema
    owner, worker = f"o_{schema}", f"w_{schema}"
    dbname = psycopg.conninfo.conninfo_to_dict(database)["dbname"]
    with psycopg.connect(database, autocommit=True) as admin:
        for statement in (
            f"CREATE ROLE {owner} LOGIN", f"CREATE ROLE {worker} LOGIN",
            f"CREATE SCHEMA {schema} AUTHORIZATION {owner}",
            f"GRANT CONNECT ON DATABASE {dbname} TO {worker}",
            f"GRANT USAGE ON SCHEMA {schema} TO {worker}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {worker}",
        ):
            admin.execute(statement)
    try:
        def as_role(role: str) -> str:
            return Settings.from_env({}, database_url=psycopg.conninfo.make_conninfo(
                database, user=role), postgres_schema=schema).conninfo

        assert migrate(as_role(owner), schema) == [v for v, _ in migration_files()]
        assert migrate(as_role(worker), schema) == []
        with psycopg.connect(as_role(worker)) as conn:
            store_match(conn, "role-1", {"status": "completed"}, output_tables(),
                        {"landings": [landing_row("role-1", 1)]})
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE sneaky (x int)")
    finally:
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
            for role in (owner, worker):
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_no_copied_column_is_int4() -> None:
    """psycopg's binary int4 dumper wraps values past 32 bits silently; int8 cannot be fooled."""
    assert [f"{t.name}.{c.name}" for t in output_tables() for c in t.columns
            if c.pg_type == "int4"] == []
