"""What a database error means for the message: classified by SQLSTATE, never by exception type.

psycopg raises very different errors under one class: "index row requires 10016 bytes" (54000,
the data can never be stored) and a lost connection are both `OperationalError`. The SQLSTATE
class says which is which. The table is documented in docs/reliability.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class DatabaseFate:
    retryable: bool
    reason: str


UNAVAILABLE = DatabaseFate(True, "database_unavailable")
UNSTORABLE = DatabaseFate(False, "unstorable_data")

# Exact codes first, then two-character classes.
_BY_CODE = {
    "57014": DatabaseFate(True, "database_timeout"),  # query_canceled: a statement_timeout
    "55P03": DatabaseFate(True, "database_conflict"),  # lock_not_available
}
_BY_CLASS = {
    "08": UNAVAILABLE,  # connection exception
    "53": DatabaseFate(True, "database_resources"),  # insufficient resources: disk, memory
    "57": UNAVAILABLE,  # operator intervention: shutdown, crash recovery
    "40": DatabaseFate(True, "database_conflict"),  # deadlock, serialization failure
    "22": UNSTORABLE,  # data exception: a value PostgreSQL refuses
    "23": UNSTORABLE,  # integrity constraint violation
    "54": UNSTORABLE,  # program limit exceeded: an index row too large, say
    # Syntax error or access rule violation: a missing table, column or grant. An operator's
    # mistake, usually fixed within minutes: retried, but under a reason of its own to alert on.
    "42": DatabaseFate(True, "database_schema"),
}


def classify_sqlstate(sqlstate: str | None) -> DatabaseFate:
    """The fate of an error with this SQLSTATE; None (no server answer at all) is an outage."""
    if not sqlstate:
        return UNAVAILABLE
    return _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or DatabaseFate(
        True, "database_error")


def classify_database_error(exc: psycopg.Error) -> DatabaseFate:
    if exc.sqlstate is None and isinstance(exc, psycopg.DataError):
        return UNSTORABLE  # refused by psycopg itself before it reached the server
    return classify_sqlstate(exc.sqlstate)


def describe_database_error(exc: psycopg.Error) -> str:
    """The server's primary message and SQLSTATE, without DETAIL: a failing row's dump would
    copy player ids and names into logs and dead-letter headers."""
    primary = exc.diag.message_primary if exc.sqlstate else None
    if not primary:
        return str(exc).split("\nDETAIL:", 1)[0]
    return f"{primary} (SQLSTATE {exc.sqlstate})"
