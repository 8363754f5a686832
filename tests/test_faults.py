"""Bad days: poison messages, dying children, hung tasks, a broker or database that goes away.

Every scenario ends with the same accounting: each published match is either processed with
exactly one copy of its rows, or in the dead-letter queue with its reason. Nothing lost, nothing
doubled.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import time
import zlib
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from pewproc import fate
from pewproc.broker.connection import connect
from pewproc.broker.deadletters import list_dead_letters
from pewproc.ops.cli import main as cli
from pewproc.settings import Settings
from tests.pg_server import PrivatePostgres
from tests.support import (
    WorkerLauncher,
    expected_rows,
    hold_match_lock,
    lock_waiters,
    make_match,
    match_rows,
    message_for,
    process_alive,
    publish,
    queue_counts,
    stopped,
    stored_rows,
    task_in_flight,
    wait_for,
)


def dead_letters(settings: Settings) -> list[tuple[str, str]]:
    """(match id or "?", reason) of every dead letter, sorted."""
    connection = connect(settings)
    try:
        letters = list_dead_letters(connection, settings)
        return sorted((d.match_id or "?", d.reason) for d in letters)
    finally:
        connection.close()


def assert_accounted(  # type: ignore[no-untyped-def]
    db: psycopg.Connection, settings: Settings, broker, completed: dict[str, Path],
    dead: list[tuple[str, str]], times_processed: dict[str, int] | None = None,
) -> None:
    """Each match of `completed` (its file) is completed with exactly the rows its file gives in
    every table; the DLQ holds `dead`; every other queue is empty with nothing unacked."""
    for match_id, path in completed.items():
        row = match_rows(db, match_id)
        assert row is not None and row["status"] == "completed", (match_id, row)
        assert stored_rows(db, match_id) == expected_rows(settings, path, match_id), match_id
        if times_processed and match_id in times_processed:
            assert row["times_processed"] == times_processed[match_id], (match_id, row)
    assert dead_letters(settings) == dead
    depths = {queue: (0, 0) for queue in
              [settings.work_queue, *map(settings.retry_queue, settings.retry_delay_list)]}
    depths[settings.dead_letter_queue] = (len(dead), 0)
    # (ready, unacked) of every queue; the broker's counters can lag a moment behind
    wait_for(lambda: {q: queue_counts(broker, q)[:2] for q in depths} == depths, 30,
             f"queues settled at {depths}")


def test_poison_messages_are_dead_lettered_at_once_with_their_reason(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    tmp_path: Path,
) -> None:
    settings = settings.replace(max_json_bytes=5_000_000, max_events=5_000,
                                max_message_bytes=2_000)
    root = Path(settings.telemetry_root)
    good = make_match(settings, "good", seed=2)
    raw = gzip.decompress(good.read_bytes())

    def put(name: str, data: bytes) -> Path:
        path = root / name
        path.write_bytes(data)
        settled = time.time() - 3600  # written long ago: a cut-off file is not still growing
        os.utime(path, (settled, settled))
        return path

    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb_bytes = bomb.compress(b" " * 100_000_000) + bomb.flush()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_bytes(raw)
    (root / "escape.json").symlink_to(outside)
    cases = {
        "truncated-gz": (put("truncated.json.gz", good.read_bytes()[: good.stat().st_size // 2]),
                         "truncated"),
        "truncated-json": (put("truncated.json", raw[: len(raw) // 3]), "telemetry_not_json"),
        "not-gzip-or-json": (put("noise.bin", b"\x00\x01binary" * 500), "telemetry_not_json"),
        # A gzip header, then a deflate block of the reserved type 11.
        "corrupt-gzip": (put("corrupt.gz", b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 100),
                         "corrupt_gzip"),
        "not-a-list": (put("object.json", b'{"_T": "LogMatchStart"}'), "not_event_list"),
        "bomb": (put("bomb.json.gz", bomb_bytes), "json_too_large"),
        "too-many-events": (put("many.json", orjson.dumps([{"_T": "X"}] * 6000)),
                            "too_many_events"),
        "missing": (root / "nowhere.json.gz", "file_missing"),
        "outside-root": (root / "escape.json", "outside_root"),
    }
    bodies = [message_for(m, p) for m, (p, _) in cases.items()]
    bodies += [b"{not json", b"[1, 2]", orjson.dumps({"file_path": "x"}),
               orjson.dumps({"match_id": "wrong-type", "file_path": 42}),
               orjson.dumps({"match_id": "huge", "file_path": "x", "pad": "x" * 3000}),
               message_for("good", good)]
    publish(settings, bodies)

    worker = launch_worker(settings)
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == len(bodies) - 1,
             90, "every poison message in the DLQ")
    expected = [(m, reason) for m, (_, reason) in cases.items()]
    expected += [("?", "invalid_json"), ("?", "invalid_message"), ("?", "invalid_message"),
                 ("wrong-type", "invalid_message"), ("huge", "message_too_large")]
    assert dead_letters(settings) == sorted(expected)
    # Matches the worker could name are marked failed with their reason; none went to retry.
    for match_id, (_, reason) in cases.items():
        row = match_rows(db, match_id)
        assert row is not None and (row["status"], row["error_reason"]) == ("failed", reason)
    assert not [o for o in worker.outcomes() if o["action"] == "retry"]
    assert (match_rows(db, "good") or {}).get("status") == "completed"
    assert worker.terminate() == 0


def test_dead_letter_headers_say_why_and_replay_works_after_the_fix(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given a match whose file is not there yet, dead-lettered
    path = Path(settings.telemetry_root) / "matchID=late" / "raw.json.gz"
    publish(settings, [message_for("late", path)])
    worker = launch_worker(settings)
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == 1, 60, "dead letter")
    connection = connect(settings)
    (letter,) = list_dead_letters(connection, settings)
    connection.close()
    assert letter.headers[fate.REASON] == "file_missing"
    assert letter.headers[fate.ERROR_CLASS] == "pewproc.errors.TelemetryError"
    assert letter.headers[fate.WORKER] == settings.worker_name
    assert letter.headers[fate.ATTEMPT] == 1
    assert letter.headers[fate.FAILED_AT]

    # When the file arrives and the operator replays by reason
    make_match(settings, "late", seed=4)
    runner = CliRunner()
    env = settings.to_env()
    other = runner.invoke(cli, ["dlq", "replay", "--reason", "invalid_json"], env=env)
    assert other.exit_code == 0 and "replayed 0" in other.output
    result = runner.invoke(cli, ["dlq", "replay", "--reason", "file_missing"], env=env)
    assert result.exit_code == 0, result.output
    assert "replayed 1" in result.output

    # Then the match is processed normally and the DLQ is empty
    wait_for(lambda: (match_rows(db, "late") or {}).get("status") == "completed", 60, "done")
    assert_accounted(db, settings, broker, {"late": path}, [])
    assert worker.terminate() == 0


def test_a_child_killed_mid_task_is_replaced_and_its_message_retried(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    paths = {m: make_match(settings, m, seed=40 + n) for n, m in enumerate(["k1", "k2", "k3"])}
    worker = launch_worker(settings)
    with task_in_flight(settings, "k1", paths["k1"]):
        for pid in worker.pool_children():
            with contextlib.suppress(ProcessLookupError):  # the pool ends the others itself
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: any(o["action"] == "retry" for o in worker.outcomes()), 30, "a retry")
    publish(settings, [message_for(m, paths[m]) for m in ("k2", "k3")])
    wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed" for m in paths),
             60, "all completed")
    retry = next(o for o in worker.outcomes() if o["action"] == "retry")
    assert retry["reason"] == "child_lost"
    assert any("replacing the pool's children" in r["message"] for r in worker.log_records())
    assert len(worker.pool_children()) >= 1
    assert_accounted(db, settings, broker, paths, [])
    assert worker.terminate() == 0


@pytest.mark.slow
def test_a_task_past_the_time_limit_is_stopped_and_retried(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # The limit counts from the child's own start signal; 4 s leaves a loaded machine room for
    # the retry, which runs in a fresh child.
    settings = settings.replace(task_timeout=4.0)
    path = make_match(settings, "hang", seed=6)
    worker = launch_worker(settings)
    with task_in_flight(settings, "hang", path):
        hung = worker.pool_children()
        wait_for(lambda: any(o.get("reason") == "timeout" for o in worker.outcomes()), 60,
                 "the time limit to strike")
        # The hung child is killed as soon as nothing else runs beside it.
        wait_for(lambda: not any(process_alive(pid) for pid in hung), 30,
                 "the hung child to be stopped")
    wait_for(lambda: worker.outcomes()[-1]["action"] == "ack", 60, "the retry to be acked")
    first = worker.outcomes()[0]
    assert (first["action"], first["reason"], first["attempt"], first["match_id"]) == (
        "retry", "timeout", 1, "hang")
    assert worker.outcomes()[-1]["attempt"] >= 2
    assert_accounted(db, settings, broker, {"hang": path}, [])
    assert worker.terminate() == 0


@pytest.mark.slow
def test_children_are_recycled_after_their_task_quota(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(max_tasks_per_child=1)
    ids = [f"r{n}" for n in range(6)]
    paths = {m: make_match(settings, m, seed=50 + n, players=4) for n, m in enumerate(ids)}
    worker = launch_worker(settings)
    publish(settings, [message_for(m, paths[m]) for m in ids])
    wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed" for m in ids),
             90, "all completed")
    # Each generation of two children took two tasks: six tasks need three generations.
    outcomes = worker.wait_outcomes(len(ids))
    recycled = [r for r in worker.log_records() if "recycled" in r["message"]]
    assert len(recycled) == 2
    assert len({o["pid"] for o in outcomes}) >= 3
    assert_accounted(db, settings, broker, paths, [])
    assert worker.terminate() == 0


@pytest.mark.slow
def test_duplicate_deliveries_across_two_workers_leave_one_copy(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    path = make_match(settings, "twice", seed=8)
    workers = [launch_worker(settings.replace(worker_id=f"w{n}")) for n in range(2)]
    for worker in workers:
        worker.wait_consuming()
    with hold_match_lock(settings, "twice"):
        publish(settings, [message_for("twice", path)] * 4)
        wait_for(lambda: lock_waiters(settings) == 4, 60, "four writers waiting together")
    wait_for(lambda: (match_rows(db, "twice") or {}).get("times_processed") == 4, 60, "all four")
    assert all(w.outcomes() for w in workers), "both workers took deliveries"
    assert_accounted(db, settings, broker, {"twice": path}, [])
    assert [w.terminate() for w in workers] == [0, 0]


@pytest.mark.slow
def test_sigkill_of_the_main_process_then_restart_loses_nothing(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    ids = [f"crash-{n}" for n in range(4)]
    paths = {m: make_match(settings, m, seed=60 + n) for n, m in enumerate(ids)}
    first = launch_worker(settings)
    with hold_match_lock(settings, ids[0]), hold_match_lock(settings, ids[1]):
        publish(settings, [message_for(m, paths[m]) for m in ids])
        wait_for(lambda: lock_waiters(settings) == 2, 60, "two tasks in flight")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        # Its children notice, and leave nothing behind: no orphans holding connections.
        wait_for(lambda: first.group_alive() == [], 30, "the dead worker's processes to exit")
        wait_for(lambda: queue_counts(broker, settings.work_queue)[:3] == (4, 0, 0), 30,
                 "the broker to requeue all four")
        second = launch_worker(settings)
        second.wait_consuming()
    wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed" for m in ids),
             90, "all completed")
    assert_accounted(db, settings, broker, paths, [])
    assert second.terminate() == 0


@pytest.mark.slow
def test_a_broker_restart_keeps_every_copy_and_redelivers_the_task_in_flight(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given a dead letter and a retry copy waiting in the broker, and a task in flight
    settings = settings.replace(retry_delays="15", max_retries=1)
    paths = {m: make_match(settings, m, seed=70 + n) for n, m in enumerate(["b1", "b2", "b3"])}
    whole = paths["b3"].read_bytes()
    paths["b3"].write_bytes(whole[: len(whole) // 2])  # still being written: retried
    missing = Path(settings.telemetry_root) / "nowhere.json.gz"
    worker = launch_worker(settings)
    publish(settings, [message_for("b-dead", missing), message_for("b3", paths["b3"])])
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == 1
             and queue_counts(broker, settings.retry_queue(15))[0] == 1, 30, "both copies")
    paths["b3"].write_bytes(whole)
    with task_in_flight(settings, "b1", paths["b1"]):
        # When the broker restarts under it
        with stopped(broker):
            wait_for(lambda: any("connection lost" in r["message"] for r in worker.log_records()),
                     30, "the worker to notice")
        # Then both copies survived it, and the task in flight is back in the work queue
        assert queue_counts(broker, settings.dead_letter_queue)[0] == 1
        assert queue_counts(broker, settings.retry_queue(15))[0] == 1
    publish(settings, [message_for("b2", paths["b2"])])
    wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed" for m in paths),
             90, "all completed")
    # The first attempt's result was not settled on the new connection; the redelivery was
    assert any(r["message"].startswith(("connection gone before a delivery was settled",
                                        "dropping the result of delivery"))
               for r in worker.log_records())
    wait_for(lambda: (match_rows(db, "b1") or {}).get("times_processed") == 2, 30,
             "the redelivered task processed again")
    consuming = [r for r in worker.log_records() if r["message"].startswith("consuming")]
    assert len(consuming) >= 2
    assert worker.process.poll() is None
    assert_accounted(db, settings, broker, paths, [("b-dead", "file_missing")],
                     {"b1": 2, "b2": 1, "b3": 1})
    assert worker.terminate() == 0


@pytest.mark.slow
def test_a_database_restart_mid_task_is_retried_and_recovers(
    private_pg: tuple[PrivatePostgres, Settings], broker, launch_worker: WorkerLauncher,
) -> None:
    server, settings = private_pg
    settings = settings.replace(max_retries=5)
    ids = ["d1", "d2"]
    paths = {m: make_match(settings, m, seed=80 + n) for n, m in enumerate(ids)}
    worker = launch_worker(settings)
    with hold_match_lock(settings, "d1"), hold_match_lock(settings, "d2"):
        publish(settings, [message_for(m, paths[m]) for m in ids])
        wait_for(lambda: lock_waiters(settings) == 2, 60, "two tasks in the write")
        with stopped(server):  # ends the test's lock sessions too
            pass
    with psycopg.connect(settings.conninfo, autocommit=True) as db:
        wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed"
                             for m in ids), 90, "all completed")
        retried = [o for o in worker.outcomes() if o["action"] == "retry"]
        assert {o["reason"] for o in retried} <= {"database_unavailable", "database_error"}
        assert len(retried) >= 2
        assert_accounted(db, settings, broker, paths,
                         [])
    assert worker.terminate() == 0


@pytest.mark.slow
def test_a_database_that_stays_down_ends_in_the_dlq_after_the_retries(
    private_pg: tuple[PrivatePostgres, Settings], broker, launch_worker: WorkerLauncher,
) -> None:
    server, settings = private_pg
    path = make_match(settings, "gone", seed=9)
    worker = launch_worker(settings)
    worker.wait_consuming()
    server.stop()
    publish(settings, [message_for("gone", path)])
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == 1, 90, "dead letter")
    connection = connect(settings)
    (letter,) = list_dead_letters(connection, settings)
    connection.close()
    assert letter.reason == "retries_exhausted:database_unavailable"
    assert letter.headers[fate.ATTEMPT] == settings.max_retries + 1
    assert len(letter.headers[fate.HISTORY]) == settings.max_retries + 1
    assert [o["action"] for o in worker.outcomes()] == ["retry"] * settings.max_retries + [
        "dead_letter"]
    assert worker.terminate() == 0


def test_a_deleted_work_queue_is_declared_again_and_consumed(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    worker = launch_worker(settings)
    worker.wait_consuming()
    connection = connect(settings)
    connection.channel().queue_delete(settings.work_queue)
    connection.close()
    wait_for(lambda: sum(r["message"].startswith("consuming") for r in worker.log_records()) == 2,
             60, "the worker to subscribe again")
    path = make_match(settings, "after", seed=13)
    publish(settings, [message_for("after", path)])
    wait_for(lambda: (match_rows(db, "after") or {}).get("status") == "completed", 60, "done")
    assert any("cancelled our consumer" in r["message"] for r in worker.log_records())
    assert worker.terminate() == 0
