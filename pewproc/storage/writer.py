"""Writing one match: every table, and the match's row, in one transaction.

Only a success writes rows: re-processing a match successfully replaces its rows, while a failed
or skipped attempt is recorded in the `matches` row alone and never touches the rows, the status
or the counts of an earlier success. Two deliveries of the same match running at once (two
children, or two worker instances) are serialised by a transaction-level advisory lock on the
match id, so the second deletes what the first wrote before writing its own: one copy, always.
Rows go in with binary COPY and declared types, the fastest path PostgreSQL offers. Integer
columns are all int8: psycopg's binary int4 dumper silently wraps a value that does not fit in 32
bits (2**40 arrives as 0), and telemetry ids are not ours to bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from pewproc import failpoints
from pewproc.telemetry.model import Row, Table

_LOCK_SEED = 0x7065_7770  # namespaces our advisory locks on match ids


def store_match(
    conn: psycopg.Connection[Any],
    match_id: str,
    fields: Mapping[str, Any],
    tables: Sequence[Table],
    rows: Mapping[str, Iterable[Row]],
) -> int:
    """Replace everything stored for the completed `match_id`; returns the detail rows written.

    `fields` are columns of the `matches` row. `tables` lists every detail table, so that rows an
    earlier run wrote and this one no longer derives are removed too.
    """
    written = 0
    with conn.transaction():
        _lock(conn, match_id)
        for table in tables:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE match_id = %s").format(sql.Identifier(table.name)),
                (match_id,),
            )
        for table in tables:
            table_rows = rows.get(table.name)
            if table_rows:
                written += _copy_rows(conn, table, table_rows)
        _upsert_match(conn, match_id, {**fields, "status": "completed", "error_reason": None,
                                       "error": None, "rows_written": written})
        failpoints.hit(failpoints.AFTER_COPY_BEFORE_COMMIT)
    return written


def record_unsuccessful(conn: psycopg.Connection[Any], match_id: str, status: str,
                        reason: str | None, error: str | None, fields: Mapping[str, Any]) -> None:
    """Record a failed or skipped attempt without touching what an earlier success wrote.

    A match that completed before stays `completed`, with its rows and counts; the attempt goes
    into its `last_*` columns. A match that never completed takes `status` (failed or skipped)
    with `reason` and `error`. `fields` are further columns for that case (file, kind, worker).
    """
    last = {"last_error_reason": reason, "last_error": error,
            "last_attempt": fields.get("attempt"), "last_failed_at": datetime.now(UTC)}
    with conn.transaction():
        _lock(conn, match_id)
        row = conn.execute("SELECT status FROM matches WHERE match_id = %s",
                           (match_id,)).fetchone()
        if row is not None and row[0] == "completed":
            conn.execute(
                sql.SQL("UPDATE matches SET {} WHERE match_id = %s").format(sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(c)) for c in last)),
                (*last.values(), match_id),
            )
            return
        _upsert_match(conn, match_id, {
            **fields, **last, "status": status, "error_reason": reason, "error": error,
            "rows_written": 0,
        }, processed=status == "skipped")


def _lock(conn: psycopg.Connection[Any], match_id: str) -> None:
    """Serialise every write of one match: concurrent deliveries queue here, one at a time."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (match_id, _LOCK_SEED))


def _copy_rows(conn: psycopg.Connection[Any], table: Table, rows: Iterable[Row]) -> int:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    )
    count = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(table.pg_types)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _upsert_match(conn: psycopg.Connection[Any], match_id: str, fields: Mapping[str, Any],
                  processed: bool = True) -> None:
    """Insert or update the match's row; `processed` counts a settled write (completed or
    skipped) in `times_processed`, which a failure leaves alone."""
    if not processed:
        fields = {**fields, "times_processed": 0}
    columns = ["match_id", *fields]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
               for c in fields if c != "times_processed"]
    if processed:
        updates += [
            sql.SQL("processed_at = now()"),
            sql.SQL("times_processed = matches.times_processed + 1"),
        ]
    statement = sql.SQL(
        "INSERT INTO matches ({}) VALUES ({}) ON CONFLICT (match_id) DO UPDATE SET {}"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        sql.SQL(", ").join(updates),
    )
    conn.execute(statement, (match_id, *fields.values()))
