"""Writing one match: every table, and the match's row, in one transaction.

Re-processing a match replaces its rows. Two deliveries of the same match running at once (two
children, or two worker instances) are serialised by a transaction-level advisory lock on the
match id, so the second deletes what the first wrote before writing its own: one copy, always.
Rows go in with binary COPY and declared types, the fastest path PostgreSQL offers. Integer
columns are all int8: psycopg's binary int4 dumper silently wraps a value that does not fit in 32
bits (2**40 arrives as 0), and telemetry ids are not ours to bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pewproc.telemetry.model import Row, Table

_LOCK_SEED = 0x7065_7770  # namespaces our advisory locks on match ids


def store_match(
    conn: psycopg.Connection[Any],
    match_id: str,
    fields: Mapping[str, Any],
    tables: Sequence[Table],
    rows: Mapping[str, Iterable[Row]],
) -> int:
    """Replace everything stored for `match_id`; returns the number of detail rows written.

    `fields` are columns of the `matches` row (status included). `tables` lists every detail
    table, so that a match that now fails or is skipped loses the rows of an earlier success.
    """
    written = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
                     (match_id, _LOCK_SEED))
        for table in tables:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE match_id = %s").format(sql.Identifier(table.name)),
                (match_id,),
            )
        for table in tables:
            table_rows = rows.get(table.name)
            if table_rows:
                written += _copy_rows(conn, table, table_rows)
        _upsert_match(conn, match_id, {**fields, "rows_written": written})
    return written


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


def _upsert_match(conn: psycopg.Connection[Any], match_id: str, fields: Mapping[str, Any]) -> None:
    columns = ["match_id", *fields]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in fields]
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
