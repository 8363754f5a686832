"""Database errors are classified by SQLSTATE: each class raised for real by PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from pewproc.settings import Settings
from pewproc.storage.sqlstate import (
    classify_database_error,
    classify_sqlstate,
    describe_database_error,
)

# (SQLSTATE, retryable, reason): one per class of docs/reliability.md's table.
TABLE = [
    ("08006", True, "database_unavailable"),
    ("53100", True, "database_resources"),
    ("57P01", True, "database_unavailable"),
    ("57014", True, "database_timeout"),
    ("40001", True, "database_conflict"),
    ("40P01", True, "database_conflict"),
    ("55P03", True, "database_conflict"),
    ("22P02", False, "unstorable_data"),
    ("23505", False, "unstorable_data"),
    ("54000", False, "unstorable_data"),
    ("42P01", True, "database_schema"),
    ("42501", True, "database_schema"),
    ("XX000", True, "database_error"),
]


@pytest.mark.parametrize(("code", "retryable", "reason"), TABLE)
def test_each_sqlstate_raised_by_the_server_has_its_fate(
    db: psycopg.Connection, code: str, retryable: bool, reason: str,
) -> None:
    with pytest.raises(psycopg.Error) as info:
        db.execute(sql.SQL("DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = {}; END $$")
                   .format(sql.Literal(code)))
    assert info.value.sqlstate == code
    fate = classify_database_error(info.value)
    assert (fate.retryable, fate.reason) == (retryable, reason)


def test_the_natural_errors_of_the_issue_are_classified_by_class_not_exception_type(
    settings: Settings, db: psycopg.Connection,
) -> None:
    db.execute("CREATE TEMP TABLE wide (id text PRIMARY KEY)")
    # An index row too large: psycopg raises OperationalError, as for a lost connection.
    with pytest.raises(psycopg.OperationalError) as too_big:
        db.execute("INSERT INTO wide SELECT string_agg(md5(random()::text), '')"
                   " FROM generate_series(1, 400)")
    assert too_big.value.sqlstate == "54000"
    assert classify_database_error(too_big.value).reason == "unstorable_data"
    db.execute("SET statement_timeout = 50")
    with pytest.raises(psycopg.OperationalError) as timeout:
        db.execute("SELECT pg_sleep(5)")
    db.execute("RESET statement_timeout")
    assert classify_database_error(timeout.value).reason == "database_timeout"
    with pytest.raises(psycopg.errors.UndefinedTable) as missing:
        db.execute("SELECT * FROM no_such_table")
    assert classify_database_error(missing.value) == classify_sqlstate("42P01")


def test_a_lost_connection_has_no_sqlstate_and_is_an_outage() -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    fate = classify_database_error(info.value)
    assert (fate.retryable, fate.reason) == (True, "database_unavailable")


def test_descriptions_keep_the_message_and_sqlstate_but_never_the_failing_row(
    db: psycopg.Connection,
) -> None:
    db.execute("CREATE TEMP TABLE people (name text CHECK (name <> 'Secret Player'))")
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        db.execute("INSERT INTO people VALUES ('Secret Player')")
    assert "Secret Player" in str(info.value)  # psycopg's own text has the DETAIL row dump
    text = describe_database_error(info.value)
    assert "Secret Player" not in text and "Failing row" not in text
    assert "violates check constraint" in text and "SQLSTATE 23514" in text
