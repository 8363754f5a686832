"""Schema migrations: numbered SQL files shipped in the package, each applied once, in order.

Two workers starting together must not race, so the whole run holds a session-level advisory
lock; the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql

from pewproc import failpoints

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every pewproc process on a database.
_MIGRATION_LOCK = 0x7065_7770_726F_63  # "pewproc"


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration in the package, in order."""
    folder = resources.files("pewproc.storage") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(conninfo: str, schema: str) -> list[str]:
    """Apply the migrations not yet applied to `schema`; returns the versions applied now."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not _pending(conn, schema):
            return applied_now  # nothing to do: a role without DDL rights gets this far
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            if exists.fetchone() is None:  # CREATE SCHEMA needs a right an existing schema does not
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, text in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(text)  # type: ignore[arg-type]
                    failpoints.hit(failpoints.INSIDE_MIGRATION)
                    conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                    )
                log.info("applied migration %s to schema %s", version, schema)
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied_now


def _pending(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[str]:
    """Versions not applied yet, read without taking locks or needing any DDL privilege."""
    table = conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)).fetchone()
    if table is None or table[0] is None:
        return [version for version, _ in migration_files()]
    done = {row[0] for row in conn.execute(
        sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema)))}
    return [version for version, _ in migration_files() if version not in done]
