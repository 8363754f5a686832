"""Start-up waits: bounded, one clear line per attempt, at once for what waiting cannot fix.

The policy (`pewproc.startup.wait_for`) is checked with stand-in dependencies; the worker is then
started against real services that are down, missing or refusing it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from pewproc import startup
from pewproc.settings import Settings
from tests.pg_server import PrivatePostgres
from tests.support import RunningWorker, WorkerLauncher, free_port, http_get, wait_for


def failing(times: int, error: Exception) -> Callable[[], None]:
    """An attempt that raises `error` `times` times, then succeeds."""
    calls = []

    def attempt() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise error

    return attempt


def dependency(attempt: Callable[[], object], permanent: bool = False) -> startup.Dependency:
    return startup.Dependency("database", "db:5432/stats", attempt,
                              permanent=lambda exc: permanent, transient=(OSError,))


# The policy


def test_wait_retries_until_the_service_answers_and_says_what_it_waits_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(startup, "BACKOFF_SECONDS", (0.01,))
    caplog.set_level(logging.INFO, "pewproc.startup")
    told: list[str] = []
    ok = startup.wait_for(dependency(failing(2, ConnectionRefusedError("refused"))), 0,
                          lambda: False, told.append)
    assert ok
    assert told == ["waiting for the database at db:5432/stats (attempt 1: refused)",
                    "waiting for the database at db:5432/stats (attempt 2: refused)", ""]
    lines = [r.getMessage() for r in caplog.records if r.name == "pewproc.startup"]
    assert lines[:2] == [
        "waiting for the database at db:5432/stats: attempt 1 failed (refused); next try in 0.01 s",
        "waiting for the database at db:5432/stats: attempt 2 failed (refused); next try in 0.01 s",
    ]
    assert lines[2] == "the database at db:5432/stats answered after 3 attempts"


def test_wait_gives_up_after_the_timeout_naming_service_address_and_error() -> None:
    started = time.monotonic()
    with pytest.raises(startup.StartupFailed) as info:
        startup.wait_for(dependency(failing(10**6, OSError("no route"))), 1.5, lambda: False,
                         lambda text: None)
    assert 1.5 <= time.monotonic() - started < 5
    assert str(info.value).startswith(
        "the database at db:5432/stats did not answer within STARTUP_TIMEOUT_SECONDS=1.5 (")
    assert str(info.value).endswith("last: no route)")


def test_an_error_waiting_cannot_fix_ends_the_wait_at_once() -> None:
    attempt = failing(10**6, OSError('FATAL: database "x" does not exist'))
    with pytest.raises(startup.StartupFailed, match="waiting cannot fix this"):
        startup.wait_for(dependency(attempt, permanent=True), 0, lambda: False, lambda t: None)


def test_a_stop_request_ends_the_wait_without_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "BACKOFF_SECONDS", (0.01,))
    told: list[str] = []
    assert not startup.wait_for(dependency(failing(10**6, OSError("down"))), 0,
                                lambda: len(told) >= 2, told.append)
    assert len(told) == 2


@pytest.mark.parametrize(("message", "permanent"), [
    ('connection failed: FATAL:  database "stats" does not exist', True),
    ('connection failed: FATAL:  password authentication failed for user "pew"', True),
    ('connection failed: FATAL:  role "pew" does not exist', True),
    ("connection failed: FATAL:  no pg_hba.conf entry for host", True),
    ("connection failed: FATAL:  the database system is starting up", False),
    ("connection failed: Connection refused Is the server running", False),
])
def test_which_database_errors_waiting_cannot_fix(message: str, permanent: bool) -> None:
    database = startup.database(Settings.from_env({}))
    assert database.permanent(psycopg.OperationalError(message)) is permanent
    assert database.permanent(psycopg.errors.InsufficientPrivilege("no CREATE")) is True


# The worker against real services


def log_lines(worker: RunningWorker) -> list[dict[str, Any]]:
    return worker.log_records()


def assert_quiet(worker: RunningWorker) -> None:
    """Nothing from pika's own loggers, and no traceback, in the worker's log."""
    records = log_lines(worker)
    assert not [r for r in records if r["logger"].startswith("pika")]
    assert not [r for r in records if "exception" in r]


def test_a_database_down_at_start_is_awaited_then_the_worker_consumes(
    private_pg: tuple[PrivatePostgres, Settings], launch_worker: WorkerLauncher,
) -> None:
    server, settings = private_pg
    settings = settings.replace(metrics_port=free_port(), startup_timeout=0)
    server.stop()
    worker = launch_worker(settings)
    address = settings.database_address
    _, text = wait_for(
        lambda: (r := http_get(settings.metrics_port, "/readyz"))[0] == 503 and r, 60,
        "/readyz to answer")
    assert text.startswith(f"waiting for the database at {address} (attempt ")
    wait_for(lambda: len([r for r in log_lines(worker)
                          if r["message"].startswith(f"waiting for the database at {address}: "
                                                     "attempt 2 failed (")]) == 1, 60,
             "a second attempt")
    server.start()
    worker.wait_consuming()
    assert wait_for(lambda: http_get(settings.metrics_port, "/readyz")[0] == 200, 30, "ready")
    assert any(r["message"].startswith(f"the database at {address} answered after ")
               for r in log_lines(worker))
    assert_quiet(worker)  # a fresh environment's queues are declared without pika warnings
    assert worker.terminate() == 0


def test_a_broker_that_never_answers_ends_the_start_after_the_timeout(
    settings: Settings, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(rabbitmq_port=free_port(), startup_timeout=2.0)
    worker = launch_worker(settings)
    assert worker.process.wait(60) == 1
    messages = [r["message"] for r in log_lines(worker)]
    where = f"the broker at 127.0.0.1:{settings.rabbitmq_port}/%2F"
    assert messages.count(
        f"waiting for {where}: attempt 1 failed "
        "([Errno 111] Connection refused); "
        "next try in 1 s") == 1
    assert messages[-1].startswith(
        f"cannot start: {where} did not answer within STARTUP_TIMEOUT_SECONDS=2 (")
    assert_quiet(worker)


@pytest.mark.parametrize("problem", ["missing database", "wrong broker password"])
def test_what_waiting_cannot_fix_fails_the_start_at_once(
    settings: Settings, launch_worker: WorkerLauncher, problem: str,
) -> None:
    if problem == "missing database":
        settings = settings.replace(
            database_url=psycopg.conninfo.make_conninfo(settings.database_url,
                                                        dbname="pewproc_no_such_db"))
        expected = 'database "pewproc_no_such_db" does not exist (waiting cannot fix this)'
    else:
        settings = settings.replace(rabbitmq_password="wrong")
        expected = "ACCESS_REFUSED - Login was refused"
    worker = launch_worker(settings.replace(startup_timeout=0))
    assert worker.process.wait(60) == 1
    last = log_lines(worker)[-1]["message"]
    assert last.startswith("cannot start: the ") and "waiting cannot fix this" in last
    assert expected in last
    assert_quiet(worker)


def test_the_consumer_loop_says_cannot_connect_until_its_first_connection(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    """Past start-up the loop retries for ever; before its first connection it never says
    "lost", and it names the broker's address."""
    from pewproc.worker import Worker

    caplog.set_level(logging.ERROR, "pewproc.worker")
    settings = settings.replace(rabbitmq_port=free_port(), processing_mode="sequential")
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        expected = f"cannot connect to the broker at {settings.broker_address} ("
        wait_for(lambda: any(r.getMessage().startswith(expected) for r in caplog.records), 30,
                 "the failed connection logged")
    finally:
        worker.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    assert not [r for r in caplog.records if "lost" in r.getMessage()]
