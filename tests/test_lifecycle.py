"""The worker's own life: stopping with work in flight, a second signal, reconnect backoff, a
database down at start, a stalled loop, sequential mode's retries, and how failures classify."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from pewproc.errors import PermanentError, TransientError
from pewproc.message import MatchMessage
from pewproc.ops.health import HealthState, serve
from pewproc.processing import Processor
from pewproc.settings import Settings
from tests.pg_server import PrivatePostgres
from tests.support import (
    WorkerLauncher,
    http_get,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    stopped,
    task_in_flight,
    wait_for,
)
from tests.test_faults import assert_accounted

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def messages(worker) -> list[str]:  # type: ignore[no-untyped-def]
    return [r["message"] for r in worker.log_records()]


@pytest.mark.slow
def test_the_shutdown_timeout_expiring_leaves_the_task_to_the_broker(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(shutdown_timeout=2.0)
    path = make_match(settings, "late-stop", seed=120)
    worker = launch_worker(settings)
    with task_in_flight(settings, "late-stop", path):
        # When SIGTERM comes and the task outlives SHUTDOWN_TIMEOUT_SECONDS
        assert worker.terminate(60) == 0
        # Then the worker exited without it, nothing of it is left, and the broker has it back
        assert any("1 unfinished, left to the broker to redeliver" in m for m in messages(worker))
        wait_for(lambda: worker.group_alive() == [], 30, "its children gone")
        wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (1, 0), 30,
                 "the message back in the queue")
    second = launch_worker(settings)
    wait_for(lambda: (match_rows(db, "late-stop") or {}).get("status") == "completed", 60, "done")
    assert_accounted(db, settings, broker, {"late-stop": path}, [])
    assert second.terminate() == 0


def test_a_second_signal_exits_at_once_and_leaves_no_process(
    settings: Settings, broker, launch_worker: WorkerLauncher,
) -> None:
    path = make_match(settings, "twice-stopped", seed=121)
    worker = launch_worker(settings)
    with task_in_flight(settings, "twice-stopped", path):
        worker.process.send_signal(signal.SIGTERM)
        wait_for(lambda: any(m.startswith("stopping:") for m in messages(worker)), 30,
                 "the first signal taken")
        worker.process.send_signal(signal.SIGINT)
        assert worker.process.wait(30) == 1
        assert any(m.startswith("second SIGINT: exiting at once") for m in messages(worker))
        wait_for(lambda: worker.group_alive() == [], 30, "no process of it left")
        wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (1, 0), 30,
                 "the message back in the queue")


@pytest.mark.slow
def test_reconnects_back_off_and_the_backoff_starts_afresh_after_a_good_connection(
    settings: Settings, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = launch_worker(settings)
    worker.wait_consuming()

    def delays() -> list[str]:
        return [m.rsplit("reconnecting in ", 1)[1] for m in messages(worker)
                if "reconnecting in" in m]

    with stopped(broker):
        wait_for(lambda: len(delays()) >= 3, 60, "three failed attempts")
    assert delays()[:3] == ["1 s", "2 s", "5 s"]
    wait_for(lambda: sum(m.startswith("consuming") for m in messages(worker)) == 2, 60,
             "consuming again")
    before = len(delays())
    with stopped(broker):
        wait_for(lambda: len(delays()) >= before + 1, 60, "the next loss")
    assert delays()[before] == "1 s"
    wait_for(lambda: sum(m.startswith("consuming") for m in messages(worker)) == 3, 60,
             "consuming once more")
    assert worker.terminate() == 0


def test_a_database_down_at_start_is_waited_for(
    private_pg: tuple[PrivatePostgres, Settings], broker, launch_worker: WorkerLauncher,
) -> None:
    server, settings = private_pg
    with stopped(server):
        worker = launch_worker(settings)
        waiting = f"waiting for the database at {settings.database_address}: attempt "
        wait_for(lambda: any(m.startswith(waiting) for m in messages(worker)),
                 60, "the worker waiting for the database")
        assert worker.process.poll() is None
        assert not any(m.startswith("consuming") for m in messages(worker))
    worker.wait_consuming()
    path = make_match(settings, "db-late", seed=122)
    publish(settings, [message_for("db-late", path)])
    with psycopg.connect(settings.conninfo, autocommit=True) as db:
        wait_for(lambda: (match_rows(db, "db-late") or {}).get("status") == "completed", 60,
                 "done")
    assert worker.terminate() == 0


def test_a_stalled_loop_makes_healthz_answer_503(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("pewproc.ops.health.time.monotonic", lambda: clock[0])
    state = HealthState("", stall_after=30.0)
    server = serve("127.0.0.1", 0, CollectorRegistry(), state)
    port = server.server_address[1]
    try:
        state.beat()
        clock[0] += 29.0
        assert http_get(port, "/healthz") == (200, "consumer loop alive\n")
        clock[0] += 2.0  # the loop has not beaten for 31 s
        assert http_get(port, "/healthz") == (503, "consumer loop stalled for 31 s\n")
        state.beat()
        assert http_get(port, "/healthz")[0] == 200
    finally:
        server.shutdown()


def test_sequential_mode_retries_through_the_wait_queue(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    path = make_match(settings, "seq-retry", seed=123)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # still being written: retried
    worker = launch_worker(settings, "--sequential")
    publish(settings, [message_for("seq-retry", path)])
    wait_for(lambda: any(o["action"] == "retry" for o in worker.outcomes()), 60, "a retry")
    path.write_bytes(whole)
    wait_for(lambda: (match_rows(db, "seq-retry") or {}).get("status") == "completed", 60, "done")
    first = worker.outcomes()[0]
    assert (first["action"], first["reason"], first["attempt"]) == ("retry", "file_incomplete", 1)
    assert worker.outcomes()[-1]["attempt"] == 2
    assert worker.pool_children() == []
    assert_accounted(db, settings, broker, {"seq-retry": path}, [])
    assert worker.terminate() == 0


SQLSTATE = psycopg.errors.lookup


@pytest.mark.parametrize(("error", "reason", "retryable"), [
    (PermanentError("bad", "some_permanent"), "some_permanent", False),
    (TransientError("later", "some_transient"), "some_transient", True),
    (SQLSTATE("22001")("value too long"), "unstorable_data", False),
    (SQLSTATE("23505")("duplicate key"), "unstorable_data", False),
    (SQLSTATE("40P01")("deadlock"), "database_conflict", True),
    (SQLSTATE("42P01")("no such table"), "database_schema", True),
    (SQLSTATE("53100")("disk full"), "database_resources", True),
    (SQLSTATE("57014")("statement timeout"), "database_timeout", True),
    (psycopg.OperationalError("connection lost"), "database_unavailable", True),
    (ConnectionResetError("reset"), "connection", True),
    (MemoryError(), "out_of_memory", False),
    (KeyError("surprise"), "processing_error", False),
])
def test_every_kind_of_failure_gets_its_reason_and_fate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, error: BaseException, reason: str,
    retryable: bool,
) -> None:
    def fail(*args: object) -> None:
        raise error

    processor = Processor(settings)
    try:
        monkeypatch.setattr(processor, "_process", fail)
        body = MatchMessage(match_id="classified", file_path=str(Path("x"))).to_json()
        result = processor.process(body, attempt=1)
    finally:
        processor.close()
    assert (result.outcome, result.reason, result.retryable) == ("failed", reason, retryable)
