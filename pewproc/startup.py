"""Start-up: wait for the database and the broker, with backoff and a bound.

At start either may still be booting (a compose stack, a restarted host), so an attempt that
fails is retried with backoff, one line per attempt: which service, where, the error, the next
try. Errors that waiting cannot heal end the wait at once: wrong credentials, a database or
virtual host that does not exist, a migration the database refuses. So does
STARTUP_TIMEOUT_SECONDS running out (0: wait forever): the worker then exits non-zero, and the
orchestrator shows the failure instead of a worker that looks alive and does nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika.exceptions
import psycopg

from pewproc.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (1, 2, 5, 10, 30)  # the last repeats
_SLICE = 0.2  # how often a wait looks at `stopping` and beats the health check

# What PostgreSQL answers at connection time when no wait can help (psycopg gives no SQLSTATE
# for errors raised while connecting, only libpq's message).
_PG_PERMANENT = re.compile(
    r'FATAL: +(database ".*" does not exist|role ".*" does not exist|password authentication '
    r'failed|no pg_hba\.conf entry)'
)
_PIKA_PERMANENT = (
    pika.exceptions.ProbableAuthenticationError,  # wrong user or password
    pika.exceptions.ProbableAccessDeniedError,  # virtual host missing or not permitted
    pika.exceptions.AuthenticationError,
)


class StartupFailed(Exception):
    """The worker cannot start: the message says which service, where and why."""


@dataclass(frozen=True)
class Dependency:
    """A service the worker needs before it can do anything."""

    name: str
    address: str
    attempt: Callable[[], object]
    permanent: Callable[[Exception], bool]
    transient: tuple[type[Exception], ...]


def database(settings: Settings) -> Dependency:
    """The database, ready once pewproc's schema is migrated."""
    from pewproc.storage.migrate import migrate

    return Dependency(
        "database", settings.database_address,
        lambda: migrate(settings.conninfo, settings.postgres_schema),
        permanent=lambda exc: (not isinstance(exc, psycopg.OperationalError)
                               or bool(_PG_PERMANENT.search(str(exc)))),
        transient=(psycopg.Error,),
    )


def broker(settings: Settings) -> Dependency:
    """The broker, ready once a connection opens (and is closed again)."""
    from pewproc.broker.connection import connect

    return Dependency(
        "broker", settings.broker_address, lambda: connect(settings).close(),
        permanent=lambda exc: isinstance(exc, _PIKA_PERMANENT),
        transient=(pika.exceptions.AMQPError, OSError),
    )


def wait_for(dependency: Dependency, timeout: float, stopping: Callable[[], bool],
             waiting: Callable[[str], None]) -> bool:
    """Attempt until `dependency` answers (True) or `stopping()` (False).

    `waiting` is told what is awaited, for /readyz, and "" once it answered. Raises
    StartupFailed on an error no wait can heal, or once `timeout` seconds (0: none) have passed.
    """
    started = time.monotonic()
    where = f"the {dependency.name} at {dependency.address}"
    attempt = 0
    while not stopping():
        attempt += 1
        try:
            dependency.attempt()
        except dependency.transient as exc:
            error = one_line(exc)
            if dependency.permanent(exc):
                raise StartupFailed(f"{where}: {error} (waiting cannot fix this)") from None
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
            left = timeout - (time.monotonic() - started) if timeout else float("inf")
            if left <= 0:
                raise StartupFailed(f"{where} did not answer within STARTUP_TIMEOUT_SECONDS="
                                    f"{timeout:g} ({attempt} attempts; last: {error})") from None
            delay = min(delay, left)
            log.warning("waiting for %s: attempt %d failed (%s); next try in %.3g s",
                        where, attempt, error, delay)
            waiting(f"waiting for {where} (attempt {attempt}: {error})")
            _sleep(delay, stopping)
            continue
        waiting("")
        if attempt > 1:
            log.info("%s answered after %d attempts", where, attempt)
        return True
    return False


def _sleep(seconds: float, stopping: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not stopping() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(_SLICE, left))


def one_line(exc: Exception) -> str:
    """An error as one short line: libpq's messages span lines, pika's nest their causes."""
    # pika wraps the socket's error in two of its own: AMQPConnectionError(connector error),
    # whose `exception` is the OSError that says what happened.
    if exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    exc = getattr(exc, "exception", None) or exc
    return " ".join((str(exc) or type(exc).__name__).split())
