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
import struct
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from pewproc import fate
from pewproc.broker.connection import connect
from pewproc.broker.deadletters import DeadLetter, list_dead_letters
from pewproc.broker.fields import RawField
from pewproc.message import MatchMessage
from pewproc.settings import Settings
from tests.support import (
    RunningWorker,
    WorkerLauncher,
    expected_rows,
    free_port,
    hold_match_lock,
    http_get,
    lock_waiters,
    make_match,
    match_rows,
    message_for,
    nested_tables,
    process_alive,
    publish,
    queue_counts,
    rabbitmqctl_table,
    stored_rows,
    wait_for,
)


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
    assert stored_rows(db, match_id) == expected_rows(settings, path, match_id)
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


def unharmed(db: psycopg.Connection, settings: Settings, broker: Any, worker: RunningWorker,
             good_id: str, dead_letters: int) -> None:
    """After the case: a good match behind it completes, every queue is as it should be, and the
    worker never reconnected."""
    good_match_completes(db, settings, good_id)
    settled(broker, settings, dead_letters)
    never_reconnected(worker)


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
    before = stored_rows(db, "kept")
    assert sum(before.values()) > 0
    # The file goes (a retention policy), then the same message comes again.
    path.unlink()
    publish(settings, [body])
    wait_for(lambda: len(letters(settings)) == 1, 60, "the second copy dead-lettered")
    assert letters(settings)[0].reason == "file_missing"
    assert stored_rows(db, "kept") == before
    row = db.execute("SELECT status, times_processed, rows_written, last_error_reason,"
                     " last_attempt FROM pewproc.matches WHERE match_id = 'kept'").fetchone()
    assert row == ("completed", 1, sum(before.values()), "file_missing", 1)
    unharmed(db, settings, broker, worker, "after-kept", dead_letters=1)


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
    unharmed(db, settings, broker, worker, "after-huge", dead_letters=2)


def test_attempt_headers_of_any_type_count_as_attempt_one_and_odd_values_ride_as_they_came(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    """Values other clients send (doubles, unsigned longs, timestamps in milliseconds, tables
    nested thousands deep: pika fails to decode some at all) reach neither a count nor an
    encoder as anything but their own bytes, and never break the connection."""
    worker = started(launch_worker, settings)
    missing = Path(settings.telemetry_root) / "nowhere.json.gz"
    double = RawField(b"d" + struct.pack(">d", 1.57))
    odd = [RawField(b"d" + struct.pack(">d", 1e30)), double, True, -4, 2**63 - 1, "7",
           RawField(b"L" + struct.pack(">Q", 2**64 - 1))]
    millis = RawField(b"T" + struct.pack(">Q", 1_796_398_000_123))  # year 58895 as seconds
    for n, value in enumerate(odd):
        publish(settings, [message_for(f"odd-{n}", missing)], headers={
            fate.ATTEMPT: value, "x-ratio": double, "x-sent": millis, "x-kept": 5,
            "x-deep": RawField(nested_tables(3000))})
    wait_for(lambda: len(letters(settings)) == len(odd), 60, "every one dead-lettered")
    for letter in letters(settings):
        assert letter.headers[fate.ATTEMPT] == 1, letter.headers
        assert (letter.headers["x-ratio"], letter.headers["x-sent"]) == (double, millis)
        assert letter.headers["x-kept"] == 5
        assert letter.headers[fate.DROPPED] == ["x-deep"]  # 21 KB: over the carried budget
        assert letter.reason == "file_missing"
    attempts = {r[0] for r in db.execute(
        "SELECT attempt FROM pewproc.matches WHERE match_id LIKE 'odd-%'")}
    assert attempts == {1}
    unharmed(db, settings, broker, worker, "after-odd", dead_letters=len(odd))


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
    unharmed(db, settings, broker, worker, "after-long", dead_letters=1)


def test_deleted_queues_of_our_own_are_declared_again_without_a_reconnect(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    retry = settings.retry_queue(settings.retry_delay_list[0])
    connection = connect(settings)
    connection.channel().queue_delete(retry)
    connection.close()
    # The stats poll (every STATS_INTERVAL_SECONDS) finds it missing: declared again.
    wait_for(lambda: any(r["message"] == f"queue {retry} is missing; declaring it again"
                         for r in worker.log_records()), 30, "the poll to declare it again")
    connection = connect(settings)
    connection.channel().queue_delete(settings.dead_letter_queue)
    connection.close()
    publish(settings, [message_for("dlq-gone", Path(settings.telemetry_root) / "none.gz")],
            declare=False)
    wait_for(lambda: [settings.dead_letter_queue, "1"] in rabbitmqctl_table(
        broker, "list_queues", "name", "messages_ready"), 60, "the dead letter in a new DLQ")
    assert letters(settings)[0].reason == "file_missing"
    assert queue_counts(broker, retry)[:2] == (0, 0)
    unharmed(db, settings, broker, worker, "after-dlq-gone", dead_letters=1)


def test_files_that_are_no_match_are_dead_lettered_as_not_a_match(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = started(launch_worker, settings)
    root = Path(settings.telemetry_root)
    empty = root / "empty.json.gz"
    empty.write_bytes(gzip.compress(b"[]"))
    objects = root / "objects.json"
    objects.write_bytes(orjson.dumps([{}] * 10_000))
    # A definition alone: a match that never started (and would replace a real one's rows).
    unstarted = root / "unstarted.json"
    unstarted.write_bytes(orjson.dumps([{"_T": "LogMatchDefinition",
                                         "MatchId": "match.bro.official.x.steam.duo.na.1"}]))
    publish(settings, [
        MatchMessage(match_id="empty", file_path=str(empty), game_type="official").to_json(),
        message_for("objects", objects), message_for("unstarted", unstarted),
    ])
    wait_for(lambda: len(letters(settings)) == 3, 60, "all three dead-lettered")
    assert sorted((letter.match_id, letter.reason) for letter in letters(settings)) == [
        ("empty", "not_a_match"), ("objects", "not_a_match"), ("unstarted", "not_a_match")]
    assert {match_rows(db, m)["status"] for m in ("empty", "objects", "unstarted")} == {"failed"}
    unharmed(db, settings, broker, worker, "after-no-match", dead_letters=3)


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
    assert stored_rows(db, "growing") == expected_rows(settings, whole, "growing")
    unharmed(db, settings, broker, worker, "after-growing", dead_letters=0)


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
        assert stored_rows(db, match_id) == expected_rows(settings, path, match_id)
    wait_for(lambda: not process_alive(stopped), 30, "the stopped child to be killed")
    settled(broker, settings, 0)
    never_reconnected(worker)


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
    unharmed(db, settings, broker, worker, "after-drift", dead_letters=2)


@pytest.mark.slow
def test_a_broker_memory_alarm_blocks_neither_the_loop_nor_the_successes(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    port = free_port()
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
        wait_for(lambda: "blocking publishes" in http_get(port, "/readyz")[1], 60,
                 "/readyz to report the blocked publishes")
        wait_for(lambda: (match_rows(db, "alarm-good") or {}).get("status") == "completed", 60,
                 "the good match to complete during the alarm")
        wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (0, 1), 30,
                 "the good match acked, the failure still waiting for its copy")
        assert http_get(port, "/healthz")[0] == 200
        assert http_get(port, "/readyz")[0] == 503
        assert "pewproc_broker_publish_blocked 1.0" in http_get(port, "/metrics")[1]
        assert letters_count(broker, settings) == 0
    finally:
        broker.rabbitctl_output("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: letters_count(broker, settings) == 1, 60, "the copy once the alarm clears")
    assert letters(settings)[0].reason == "unstorable_data"
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "ready again")
    unharmed(db, settings, broker, worker, "after-alarm", dead_letters=1)


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
            # A replay carries other headers: another message, processed (and crashing) again.
            publish(settings, [crasher], headers={"x-pewproc-replayed-at": "now"})
            wait_for(lambda: letters_count(broker, settings) == 3, 60, "the replay")
            publish(settings, [message_for("after-crash", good)])
            wait_for(lambda: (match_rows(conn, "after-crash") or {}).get("status")
                     == "completed", 60, "the good match")
        worker.request_stop()

    driver = threading.Thread(target=drive)
    driver.start()
    assert worker.run() == 0
    driver.join()
    assert [(x.reason, x.headers.get(fate.MINIMAL)) for x in letters(settings)] == [
        ("settlement_crashed", True)] * 3
    # processed by the first delivery and the replay, not by the return of the first
    assert match_rows(db, "crasher")["times_processed"] == 2
    assert worker.metrics.settle_crashes._value.get() == 2
    assert worker.metrics.reconnects._value.get() == 0
    settled(broker, settings, 3)


@pytest.mark.slow
def test_a_copy_a_full_queue_refuses_waits_for_room_and_nothing_is_lost(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    """A nack (a full DLQ with reject-publish) is the queue's state, not the message's: the
    original stays unacked and its copy is published once there is room."""
    connection = connect(settings)
    connection.channel().queue_declare(settings.dead_letter_queue, durable=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"})
    connection.close()
    worker = started(launch_worker, settings)
    root = Path(settings.telemetry_root)
    publish(settings, [message_for("first", root / "none-1.gz")])
    wait_for(lambda: letters_count(broker, settings) == 1, 60, "the DLQ full")
    publish(settings, [message_for("second", root / "none-2.gz")])
    wait_for(lambda: any("nack: is the queue full?" in r["message"]
                         for r in worker.log_records()), 60, "the refusal")
    assert queue_counts(broker, settings.work_queue)[:2] == (0, 1)  # held, not lost
    good_match_completes(db, settings, "during-refusals")
    connection = connect(settings)
    connection.channel().queue_purge(settings.dead_letter_queue)  # the operator makes room
    connection.close()
    wait_for(lambda: [x.match_id for x in letters(settings)] == ["second"], 60, "the copy")
    assert not [o for o in worker.outcomes() if o["action"] == "reject"]
    unharmed(db, settings, broker, worker, "after-refusals", dead_letters=1)


def test_copies_that_cannot_be_encoded_fall_back_to_a_minimal_letter_then_a_reject(
    settings: Settings, db: psycopg.Connection, broker, monkeypatch,
) -> None:
    """Injected: copies whose headers pika cannot encode. The copy becomes a minimal dead
    letter; when even that cannot be published, the original is rejected and counted."""
    import threading

    from pewproc import worker as worker_module
    from pewproc.fate import Fate
    from pewproc.worker import Worker

    unencodable = {"x-bad": object()}
    real_decide, real_minimal = worker_module.decide, worker_module.minimal_dead_letter

    def decide(result, *args, **kwargs):  # type: ignore[no-untyped-def]
        fate_ = real_decide(result, *args, **kwargs)
        if result.match_id in ("unencodable", "hopeless"):
            return Fate(fate_.action, fate_.queue, {**fate_.headers, **unencodable})
        return fate_

    def minimal(reason: str, body: bytes, settings_: Settings) -> Fate:
        fate_ = real_minimal(reason, body, settings_)
        if b"hopeless" in body:
            return Fate(fate_.action, fate_.queue, unencodable)
        return fate_

    monkeypatch.setattr(worker_module, "decide", decide)
    monkeypatch.setattr(worker_module, "minimal_dead_letter", minimal)
    root = Path(settings.telemetry_root)
    worker = Worker(settings)

    def drive() -> None:
        publish(settings, [message_for("unencodable", root / "none-1.gz")])
        wait_for(lambda: letters_count(broker, settings) == 1, 60, "the minimal letter")
        publish(settings, [message_for("hopeless", root / "none-2.gz")])
        wait_for(lambda: worker.metrics.copy_fallbacks.labels("rejected")._value.get() == 1, 60,
                 "the reject")
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            good_match_completes(conn, settings, "after-fallbacks")
        worker.request_stop()

    driver = threading.Thread(target=drive)
    driver.start()
    assert worker.run() == 0
    driver.join()
    (letter,) = letters(settings)
    assert (letter.match_id, letter.reason, letter.headers[fate.MINIMAL]) == (
        "unencodable", "file_missing", True)
    assert worker.metrics.copy_fallbacks.labels("minimal_dead_letter")._value.get() == 1
    assert worker.metrics.reconnects._value.get() == 0
    settled(broker, settings, 1)
