"""No poison message can wedge a worker, and no failed attempt destroys good data.

Each case is thrown at a running worker and followed by a good match, which must complete with
exactly the rows its extraction gives in every table. None may make the worker reconnect: each
test ends by checking that it subscribed once and never lost its connection.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pika
import pika.data
import psycopg
import pytest

from pewproc import fate
from pewproc.broker.connection import connect
from pewproc.broker.deadletters import DeadLetter, list_dead_letters
from pewproc.message import MatchMessage
from pewproc.processing import extract_file
from pewproc.settings import Settings
from pewproc.telemetry.extract import output_tables
from tests.support import (
    RunningWorker,
    WorkerLauncher,
    hold_match_lock,
    lock_waiters,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    rabbitmqctl_table,
    wait_for,
)


def table_counts(db: psycopg.Connection, match_id: str) -> dict[str, int]:
    return {t.name: db.execute(f"SELECT count(*) FROM pewproc.{t.name} WHERE match_id = %s",
                               (match_id,)).fetchone()[0] for t in output_tables()}


def expected_counts(path: Path, match_id: str, settings: Settings) -> dict[str, int]:
    rows = extract_file(path, match_id, settings)["rows"]
    return {t.name: rows.get(t.name, 0) for t in output_tables()}


def letters(settings: Settings) -> list[DeadLetter]:
    connection = connect(settings)
    try:
        return list_dead_letters(connection, settings)
    finally:
        connection.close()


def good_match_completes(db: psycopg.Connection, settings: Settings, match_id: str,
                         seed: int = 3) -> None:
    """The match behind the poison: processed once, with every table exactly as extracted."""
    path = make_match(settings, match_id, seed=seed)
    publish(settings, [message_for(match_id, path)])
    wait_for(lambda: (match_rows(db, match_id) or {}).get("status") == "completed", 90,
             f"{match_id} to complete")
    assert table_counts(db, match_id) == expected_counts(path, match_id, settings)
    assert match_rows(db, match_id)["times_processed"] == 1


def settled(broker: Any, settings: Settings, dead_letters: int) -> None:
    """Work and retry queues empty and acked; the DLQ holds exactly `dead_letters`."""
    wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (0, 0), 30,
             "the work queue to be empty and settled")
    for delay in set(settings.retry_delay_list):
        assert queue_counts(broker, settings.retry_queue(delay))[:2] == (0, 0)
    assert queue_counts(broker, settings.dead_letter_queue)[0] == dead_letters


def never_reconnected(worker: RunningWorker) -> None:
    messages = [r["message"] for r in worker.log_records()]
    assert sum(m.startswith("consuming") for m in messages) == 1, messages
    assert not [m for m in messages if "connection lost" in m or "consumer loop" in m]
    assert worker.process.poll() is None


def started(launch_worker: WorkerLauncher, settings: Settings) -> RunningWorker:
    worker = launch_worker(settings)
    worker.wait_consuming()
    return worker


def test_a_failing_redelivery_never_destroys_an_earlier_success(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    path = make_match(settings, "kept", seed=21)
    body = message_for("kept", path)
    publish(settings, [body])
    wait_for(lambda: (match_rows(db, "kept") or {}).get("status") == "completed", 60, "done")
    before = table_counts(db, "kept")
    assert sum(before.values()) > 0
    # The file goes (a retention policy), then the same message comes again.
    path.unlink()
    publish(settings, [body])
    wait_for(lambda: len(letters(settings)) == 1, 60, "the second copy dead-lettered")
    assert letters(settings)[0].reason == "file_missing"
    assert table_counts(db, "kept") == before
    row = db.execute("SELECT status, times_processed, rows_written, last_error_reason,"
                     " last_attempt FROM pewproc.matches WHERE match_id = 'kept'").fetchone()
    assert row == ("completed", 1, sum(before.values()), "file_missing", 1)
    good_match_completes(db, settings, "after-kept")
    settled(broker, settings, 1)
    never_reconnected(worker)


def test_huge_match_ids_and_headers_never_make_a_copy_too_large_for_a_frame(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    huge_id = "h" * 150_000  # the body is over MAX_MESSAGE_BYTES too: dead-lettered as such
    publish(settings, [orjson.dumps({"match_id": huge_id, "file_path": "x"})])
    missing = Path(settings.telemetry_root) / "nowhere.json.gz"
    publish(settings, [message_for("big-header", missing)],
            headers={"x-upstream-blob": "b" * 130_000, "x-trace": "t-1"})
    wait_for(lambda: len(letters(settings)) == 2, 60, "both dead-lettered")
    by_reason = {letter.reason: letter for letter in letters(settings)}
    too_large = by_reason["message_too_large"]
    assert len(too_large.headers[fate.MATCH_ID]) <= 128
    assert too_large.headers[fate.MATCH_ID].startswith("hhhh")
    blob = by_reason["file_missing"]
    assert blob.headers[fate.DROPPED] == ["x-upstream-blob"]
    assert blob.headers["x-trace"] == "t-1"  # small upstream headers ride along
    good_match_completes(db, settings, "after-huge")
    settled(broker, settings, 2)
    never_reconnected(worker)


@contextlib.contextmanager
def sending_doubles() -> Iterator[None]:
    """Make this process's pika encode Python floats as AMQP doubles, as Java, Go and Node
    clients send them (pika itself refuses floats)."""
    original = pika.data.encode_value

    def encode_value(pieces: list[bytes], value: Any) -> int:
        if isinstance(value, float):
            pieces.append(struct.pack(">cd", b"d", value))
            return 9
        return original(pieces, value)

    pika.data.encode_value = encode_value
    try:
        yield
    finally:
        pika.data.encode_value = original


def test_attempt_headers_of_any_type_count_as_attempt_one_and_doubles_are_not_carried(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    missing = Path(settings.telemetry_root) / "nowhere.json.gz"
    odd = [1e30, 2.0, -1.5, True, -4, 2**63 - 1, "7"]  # (the broker itself refuses NaN)
    with sending_doubles():
        for n, value in enumerate(odd):
            publish(settings, [message_for(f"odd-{n}", missing)],
                    headers={fate.ATTEMPT: value, "x-ratio": 1.57, "x-kept": 5})
    wait_for(lambda: len(letters(settings)) == len(odd), 60, "every one dead-lettered")
    for letter in letters(settings):
        assert letter.headers[fate.ATTEMPT] == 1, letter.headers
        assert letter.headers[fate.DROPPED] == ["x-ratio"]
        assert letter.headers["x-kept"] == 5
        assert letter.reason == "file_missing"
    attempts = {r[0] for r in db.execute(
        "SELECT attempt FROM pewproc.matches WHERE match_id LIKE 'odd-%'")}
    assert attempts == {1}
    good_match_completes(db, settings, "after-odd")
    settled(broker, settings, len(odd))
    never_reconnected(worker)


def test_a_match_id_postgres_cannot_index_is_dead_lettered_at_once_as_unstorable(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    long_id = os.urandom(5_000).hex()  # 10,000 random characters: over btree's row limit
    path = make_match(settings, "long-file", seed=22)
    publish(settings, [message_for(long_id, path)])
    wait_for(lambda: len(letters(settings)) == 1, 60, "dead-lettered")
    (letter,) = letters(settings)
    assert letter.reason == "unstorable_data"
    assert "SQLSTATE 54000" in letter.headers[fate.ERROR]
    assert [o["action"] for o in worker.outcomes()] == ["dead_letter"]  # no retries at all
    good_match_completes(db, settings, "after-long")
    settled(broker, settings, 1)
    never_reconnected(worker)


def test_a_deleted_dead_letter_queue_is_declared_again_without_a_reconnect(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    connection = connect(settings)
    connection.channel().queue_delete(settings.dead_letter_queue)
    connection.close()
    publish(settings, [message_for("dlq-gone", Path(settings.telemetry_root) / "none.gz")],
            declare=False)
    wait_for(lambda: [settings.dead_letter_queue, "1"] in rabbitmqctl_table(
        broker, "list_queues", "name", "messages_ready"), 60, "the dead letter in a new DLQ")
    assert letters(settings)[0].reason == "file_missing"
    assert any("declaring it again" in r["message"] for r in worker.log_records())
    good_match_completes(db, settings, "after-dlq-gone")
    settled(broker, settings, 1)
    never_reconnected(worker)


def test_files_that_are_no_match_are_dead_lettered_as_not_a_match(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    root = Path(settings.telemetry_root)
    empty = root / "empty.json.gz"
    empty.write_bytes(gzip.compress(b"[]"))
    objects = root / "objects.json"
    objects.write_bytes(orjson.dumps([{}] * 10_000))
    publish(settings, [
        MatchMessage(match_id="empty", file_path=str(empty), game_type="official").to_json(),
        message_for("objects", objects),
    ])
    wait_for(lambda: len(letters(settings)) == 2, 60, "both dead-lettered")
    assert sorted((letter.match_id, letter.reason) for letter in letters(settings)) == [
        ("empty", "not_a_match"), ("objects", "not_a_match")]
    assert {match_rows(db, m)["status"] for m in ("empty", "objects")} == {"failed"}
    good_match_completes(db, settings, "after-no-match")
    settled(broker, settings, 2)
    never_reconnected(worker)


@pytest.mark.slow
def test_a_file_still_being_written_is_retried_and_completes_once_written(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    whole = make_match(settings, "growing", seed=23)
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])  # half written, just now
    publish(settings, [message_for("growing", whole)])
    wait_for(lambda: any(o.get("reason") == "file_incomplete" for o in worker.outcomes()), 60,
             "the attempt on the half-written file")
    whole.write_bytes(data)  # the writer finishes
    wait_for(lambda: (match_rows(db, "growing") or {}).get("status") == "completed", 60, "done")
    first = worker.outcomes()[0]
    assert (first["action"], first["reason"]) == ("retry", "file_incomplete")
    assert table_counts(db, "growing") == expected_counts(whole, "growing", settings)
    good_match_completes(db, settings, "after-growing")
    settled(broker, settings, 0)
    never_reconnected(worker)


def _child_waiting_on_a_lock(settings: Settings, worker: RunningWorker) -> int | None:
    """The pool child whose database session waits on an advisory lock (sessions are named
    after their process)."""
    children = worker.pool_children()
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        names = {r[0] for r in conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND NOT l.granted")}
    owners = [pid for pid in children if f"pewproc-{pid}" in names]
    return owners[0] if len(owners) == 1 else None


@pytest.mark.slow
def test_a_stopped_idle_child_neither_stalls_its_sibling_nor_fails_its_task(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(task_timeout=120.0)  # the stall shows after STALL_SECONDS
    worker = started(launch_worker, settings)
    paths = {m: make_match(settings, m, seed=24 + n) for n, m in enumerate(["busy", "queued"])}
    stopped: int | None = None
    try:
        with hold_match_lock(settings, "busy"):
            publish(settings, [message_for("busy", paths["busy"])])
            busy_child = wait_for(lambda: _child_waiting_on_a_lock(settings, worker), 60,
                                  "busy to be in its write")
            (stopped,) = [p for p in worker.pool_children() if p != busy_child]
            os.kill(stopped, signal.SIGSTOP)  # idle, holding the call queue's lock
            publish(settings, [message_for("queued", paths["queued"])])
            wait_for(lambda: any(o.get("reason") == "pool_stalled" for o in worker.outcomes()),
                     60, "the stall to be noticed")
            wait_for(lambda: (match_rows(db, "queued") or {}).get("status") == "completed", 60,
                     "the queued match to complete in a new generation")
        wait_for(lambda: (match_rows(db, "busy") or {}).get("status") == "completed", 60,
                 "the busy match to complete where it started")
    finally:
        if stopped is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
    outcomes = {(o["match_id"], o["attempt"]): (o["action"], o["reason"])
                for o in worker.outcomes()}
    assert outcomes[("busy", 1)][0] == "ack"  # the healthy sibling's task never failed
    assert outcomes[("queued", 1)] == ("retry", "pool_stalled")
    assert outcomes[("queued", 2)][0] == "ack"
    for match_id, path in paths.items():
        assert table_counts(db, match_id) == expected_counts(path, match_id, settings)
    wait_for(lambda: not _alive(stopped), 30, "the stopped child to be killed")
    settled(broker, settings, 0)
    never_reconnected(worker)


def _alive(pid: int | None) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_control_characters_and_failing_rows_stay_out_of_headers_and_logs(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    missing = Path(settings.telemetry_root) / "nowhere.json.gz"
    publish(settings, [message_for("nul\x00and\nnewline", missing)])
    path = make_match(settings, "drift", seed=25)
    names = {e["character"]["name"] for e in orjson.loads(gzip.decompress(path.read_bytes()))
             if e["_T"] == "LogParachuteLanding"}
    # Schema drift: a constraint the rows break, whose error dumps the failing row.
    db.execute("ALTER TABLE pewproc.landings ADD CONSTRAINT drift CHECK (player_name IS NULL)"
               " NOT VALID")
    try:
        publish(settings, [message_for("drift", path)])
        wait_for(lambda: len(letters(settings)) == 2, 60, "both dead-lettered")
    finally:
        db.execute("ALTER TABLE pewproc.landings DROP CONSTRAINT drift")
    by_reason = {letter.reason: letter for letter in letters(settings)}
    assert by_reason["file_missing"].headers[fate.MATCH_ID] == "nul\\x00and\\x0anewline"
    error = by_reason["unstorable_data"].headers[fate.ERROR]
    assert "SQLSTATE 23514" in error
    everything = orjson.dumps([letter.headers for letter in letters(settings)]).decode()
    everything += worker.log_path.read_text()
    assert "Failing row" not in everything
    assert not any(name in everything for name in names)
    assert "\x00" not in everything
    good_match_completes(db, settings, "after-drift")
    settled(broker, settings, 2)
    never_reconnected(worker)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_a_broker_memory_alarm_blocks_neither_the_loop_nor_the_successes(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    port = _free_port()
    settings = settings.replace(metrics_port=port)
    worker = started(launch_worker, settings)
    unstorable = os.urandom(5_000).hex()  # fails in its write: its dead letter is a publish
    paths = {unstorable: make_match(settings, "alarm-a", seed=26),
             "alarm-good": make_match(settings, "alarm-good", seed=27)}
    try:
        with hold_match_lock(settings, unstorable), hold_match_lock(settings, "alarm-good"):
            publish(settings, [message_for(m, p) for m, p in paths.items()])
            wait_for(lambda: lock_waiters(settings) == 2, 60, "both tasks in their write")
            broker.rabbitctl_output("set_vm_memory_high_watermark", "0.0000001")
        # The failure's copy now waits for the broker; the loop and the success do not.
        wait_for(lambda: "blocking publishes" in _get(port, "/readyz")[1], 60,
                 "/readyz to report the blocked publishes")
        wait_for(lambda: (match_rows(db, "alarm-good") or {}).get("status") == "completed", 60,
                 "the good match to complete during the alarm")
        wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (0, 1), 30,
                 "the good match acked, the failure still waiting for its copy")
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz")[0] == 503
        assert "pewproc_broker_publish_blocked 1.0" in _get(port, "/metrics")[1]
        assert letters_count(broker, settings) == 0
    finally:
        broker.rabbitctl_output("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: letters_count(broker, settings) == 1, 60, "the copy once the alarm clears")
    assert letters(settings)[0].reason == "unstorable_data"
    wait_for(lambda: _get(port, "/readyz")[0] == 200, 30, "ready again")
    good_match_completes(db, settings, "after-alarm")
    settled(broker, settings, 1)
    never_reconnected(worker)


def letters_count(broker: Any, settings: Settings) -> int:
    return queue_counts(broker, settings.dead_letter_queue)[0]


@pytest.mark.slow
def test_a_settlement_that_crashes_is_dead_lettered_minimally_now_and_when_it_returns(
    settings: Settings, db: psycopg.Connection, broker, monkeypatch,
) -> None:
    """A bug strikes while one delivery is settled: the loop survives and never retries it."""
    import threading

    from pewproc import worker as worker_module
    from pewproc.worker import Worker

    real_decide = worker_module.decide

    def buggy_decide(result, *args, **kwargs):  # type: ignore[no-untyped-def]
        if result.match_id == "crasher":
            raise RuntimeError("a bug in settlement")
        return real_decide(result, *args, **kwargs)

    monkeypatch.setattr(worker_module, "decide", buggy_decide)
    crasher = message_for("crasher", make_match(settings, "crasher", seed=28))
    good = make_match(settings, "after-crash", seed=29)
    worker = Worker(settings)

    def drive() -> None:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            publish(settings, [crasher])
            wait_for(lambda: letters_count(broker, settings) == 1, 60, "the first crash handled")
            publish(settings, [crasher])  # the same message again, as a redelivery would be
            wait_for(lambda: letters_count(broker, settings) == 2, 60, "the second one")
            publish(settings, [message_for("after-crash", good)])
            wait_for(lambda: (match_rows(conn, "after-crash") or {}).get("status")
                     == "completed", 60, "the good match")
        worker.request_stop()

    driver = threading.Thread(target=drive)
    driver.start()
    assert worker.run() == 0
    driver.join()
    assert [(x.reason, x.headers.get(fate.MINIMAL)) for x in letters(settings)] == [
        ("settlement_crashed", True)] * 2
    assert match_rows(db, "crasher")["times_processed"] == 1  # the return was not processed
    assert worker.metrics.settle_crashes._value.get() == 1
    assert worker.metrics.reconnects._value.get() == 0
    settled(broker, settings, 2)


@pytest.mark.slow
def test_copies_the_broker_refuses_fall_back_to_a_minimal_letter_then_a_reject(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    """Queues an operator made full (x-max-length, reject-publish) nack pewproc's copies."""
    full = {"x-max-length": 0, "x-overflow": "reject-publish"}
    connection = connect(settings)
    channel = connection.channel()
    channel.queue_declare(settings.dead_letter_queue, durable=True,
                          arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    for delay in set(settings.retry_delay_list):
        channel.queue_declare(settings.retry_queue(delay), durable=True, arguments=full)
    connection.close()
    worker = started(launch_worker, settings)
    root = Path(settings.telemetry_root)
    young = root / "young.json.gz"
    young.write_bytes(gzip.compress(b"[{}]")[:10])  # cut off, just now: to be retried
    publish(settings, [message_for("young", young)])
    wait_for(lambda: letters_count(broker, settings) == 1, 60, "the retry copy's fallback")
    (letter,) = letters(settings)
    assert (letter.reason, letter.headers[fate.MINIMAL]) == ("file_incomplete", True)
    publish(settings, [message_for("refused", root / "none.gz")])
    wait_for(lambda: any(o["action"] == "reject" for o in worker.outcomes()), 60, "a reject")
    errors = [r["message"] for r in worker.log_records() if r["level"] == "ERROR"]
    assert any("rejected without requeue" in m for m in errors)
    assert letters_count(broker, settings) == 1
    good_match_completes(db, settings, "after-refusals")
    settled(broker, settings, 1)
    never_reconnected(worker)
