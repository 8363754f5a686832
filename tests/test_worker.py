"""The whole path of a message, with a real broker, a real database and real worker processes."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pewproc.settings import Settings
from pewproc.worker import Worker
from tests.support import (
    WorkerLauncher,
    count_rows,
    expected_rows,
    hold_match_lock,
    lock_waiters,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    rabbitmqctl_table,
    stored_rows,
    wait_for,
)


def all_completed(db: psycopg.Connection, match_ids: list[str]) -> bool:
    return all((match_rows(db, m) or {}).get("status") == "completed" for m in match_ids)


def test_every_published_match_is_processed_exactly_once(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    real_match_file: Path,
) -> None:
    # Given the real match and generated ones of both kill layouts on the queue
    real = Path(settings.telemetry_root) / "real" / real_match_file.name
    real.parent.mkdir()
    shutil.copy(real_match_file, real)
    matches = {"real-c2fb5093": real}
    for seed in range(1, 8):
        layout = "v1" if seed % 2 else "v2"
        matches[f"synth-{seed}"] = make_match(settings, f"synth-{seed}", seed=seed,
                                              kill_layout=layout)
    publish(settings, [message_for(m, p) for m, p in matches.items()])

    # When a worker with a pool of two runs
    worker = launch_worker(settings)
    wait_for(lambda: all_completed(db, list(matches)), 120, "all matches completed")

    # Then each match was processed once, has rows, and the queue is empty with nothing unacked
    for match_id in matches:
        row = match_rows(db, match_id)
        assert row is not None
        assert row["times_processed"] == 1, match_id
        assert row["rows_written"] > 0
        assert stored_rows(db, match_id) == expected_rows(settings, matches[match_id], match_id)
    wait_for(lambda: queue_counts(broker, settings.work_queue) == (0, 0, 1), 30,
             "work queue empty and settled")
    assert [o["action"] for o in worker.wait_outcomes(len(matches))] == ["ack"] * len(matches)
    assert worker.terminate() == 0


def test_prefetch_is_the_pool_size_and_two_children_work_in_parallel(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given four matches whose writes are held back by the test
    ids = [f"par-{n}" for n in range(4)]
    paths = {m: make_match(settings, m, seed=n) for n, m in enumerate(ids)}
    worker = launch_worker(settings)
    worker.wait_consuming()

    # Then the broker sees one consumer with a prefetch of 2
    consumers = rabbitmqctl_table(broker, "list_consumers", "queue_name", "prefetch_count")
    assert [row for row in consumers if row[0] == settings.work_queue] == [
        [settings.work_queue, "2"]
    ]

    with hold_match_lock(settings, ids[0]), hold_match_lock(settings, ids[1]):
        publish(settings, [message_for(m, paths[m]) for m in ids])
        # When two tasks are parked inside the write at the same time
        wait_for(lambda: lock_waiters(settings) == 2, 60, "two tasks in flight at once")
        # Then both children are busy, and the broker holds exactly the prefetch unacked
        assert len(worker.pool_children()) == 2
        wait_for(lambda: queue_counts(broker, settings.work_queue)[1] == 2, 30, "2 unacked")
    outcomes = worker.wait_outcomes(len(ids))
    assert all_completed(db, ids)
    assert len({o["pid"] for o in outcomes}) == 2
    assert intervals_overlap(outcomes)
    assert worker.terminate() == 0


def test_sequential_mode_never_overlaps_and_gives_the_same_rows(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given matches processed in parallel mode first
    ids = [f"seq-{n}" for n in range(4)]
    paths = {m: make_match(settings, m, seed=10 + n) for n, m in enumerate(ids)}
    publish(settings, [message_for(m, paths[m]) for m in ids])
    parallel = launch_worker(settings)
    wait_for(lambda: all_completed(db, ids), 60, "parallel run")
    assert parallel.terminate() == 0
    before = {m: stored_rows(db, m) for m in ids}
    assert before == {m: expected_rows(settings, paths[m], m) for m in ids}

    # When the same matches go through the sequential rollback mode
    publish(settings, [message_for(m, paths[m]) for m in ids])
    sequential = launch_worker(settings, "--sequential")
    wait_for(lambda: all((match_rows(db, m) or {}).get("times_processed") == 2 for m in ids),
             60, "sequential run")

    # Then prefetch was 1, no child existed, no two tasks overlapped, and the rows are the same
    consumers = rabbitmqctl_table(broker, "list_consumers", "queue_name", "prefetch_count")
    assert [r for r in consumers if r[0] == settings.work_queue] == [[settings.work_queue, "1"]]
    assert sequential.pool_children() == []
    outcomes = sequential.wait_outcomes(len(ids))
    assert len(outcomes) == len(ids)
    assert not intervals_overlap(outcomes)
    assert {m: stored_rows(db, m) for m in ids} == before
    assert sequential.terminate() == 0


def intervals_overlap(outcomes: list[dict]) -> bool:
    spans = sorted((o["started_at"], o["ended_at"]) for o in outcomes)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_the_same_match_delivered_twice_leaves_one_copy(
    settings: Settings, db: psycopg.Connection, launch_worker: WorkerLauncher,
) -> None:
    path = make_match(settings, "dup", seed=3)
    launch_worker(settings)

    # One delivery after the other
    publish(settings, [message_for("dup", path)])
    wait_for(lambda: (match_rows(db, "dup") or {}).get("times_processed") == 1, 60, "first")
    once = stored_rows(db, "dup")
    assert once == expected_rows(settings, path, "dup")
    publish(settings, [message_for("dup", path)])
    wait_for(lambda: (match_rows(db, "dup") or {}).get("times_processed") == 2, 60, "second")
    assert stored_rows(db, "dup") == once

    # Two deliveries at once, both inside the write together
    with hold_match_lock(settings, "dup"):
        publish(settings, [message_for("dup", path)] * 2)
        wait_for(lambda: lock_waiters(settings) == 2, 60, "both deliveries waiting to write")
    wait_for(lambda: (match_rows(db, "dup") or {}).get("times_processed") == 4, 60, "both")
    assert stored_rows(db, "dup") == once


def test_sigterm_lets_running_tasks_finish_and_exits_zero(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given two tasks in flight and two more messages waiting
    ids = [f"term-{n}" for n in range(4)]
    paths = {m: make_match(settings, m, seed=20 + n) for n, m in enumerate(ids)}
    worker = launch_worker(settings)
    with hold_match_lock(settings, ids[0]), hold_match_lock(settings, ids[1]):
        publish(settings, [message_for(m, paths[m]) for m in ids[:2]])
        wait_for(lambda: lock_waiters(settings) == 2, 60, "two tasks in flight")
        publish(settings, [message_for(m, paths[m]) for m in ids[2:]])
        # When SIGTERM arrives while they run
        worker.process.send_signal(15)
        wait_for(lambda: any(r["message"].startswith("stopping") for r in worker.log_records()),
                 30, "the worker to begin stopping")
    # Then they complete and are acked, the process exits 0, and the rest waits in the queue
    assert worker.process.wait(60) == 0
    assert all_completed(db, ids[:2])
    assert all(match_rows(db, m) is None for m in ids[2:])
    wait_for(lambda: queue_counts(broker, settings.work_queue) == (2, 0, 0), 30, "2 ready")


def test_a_delivery_dispatched_after_the_stop_request_goes_back_untouched(
    settings: Settings, db: psycopg.Connection, broker,
) -> None:
    # Given a stop asked for just before a delivery is dispatched, as a SIGTERM can land while
    # the broker is still sending (the consumer is cancelled at the end of the loop's tick)
    class StoppedJustBefore(Worker):
        def _on_delivery(self, *args: Any) -> None:
            self.request_stop()
            super()._on_delivery(*args)

    match_id = "sent-while-stopping"  # unique: every test of the run shares the database
    publish(settings, [message_for(match_id, make_match(settings, match_id, seed=31))])

    # When the worker runs
    assert StoppedJustBefore(settings).run() == 0

    # Then it started nothing on its way out: the message waits in the queue for the next one
    assert match_rows(db, match_id) is None
    assert queue_counts(broker, settings.work_queue)[:2] == (1, 0)


@pytest.mark.slow
def test_a_task_longer_than_two_heartbeats_keeps_the_connection(
    settings: Settings, db: psycopg.Connection, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(rabbitmq_heartbeat=1)
    path = make_match(settings, "slow", seed=5)
    worker = launch_worker(settings)
    with hold_match_lock(settings, "slow"):
        publish(settings, [message_for("slow", path)])
        wait_for(lambda: lock_waiters(settings) == 1, 60, "the task to start")
        # Hold the task for more than two heartbeat intervals, measured by the broker's clock:
        # wait until the worker has logged three stats lines (one a second) while it waits.
        start = len(stats_lines(worker))
        wait_for(lambda: len(stats_lines(worker)) >= start + 3, 30, "three stats lines")
    wait_for(lambda: (match_rows(db, "slow") or {}).get("status") == "completed", 60, "done")
    messages = [r["message"] for r in worker.log_records()]
    assert not any("connection lost" in m for m in messages)
    assert sum(m.startswith("consuming") for m in messages) == 1
    assert worker.terminate() == 0


def stats_lines(worker) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in worker.log_records() if r["message"].startswith("stats:")]


def test_acks_are_sent_from_the_connection_thread(
    settings: Settings, db: psycopg.Connection,
) -> None:
    ids = [f"thread-{n}" for n in range(3)]
    paths = {m: make_match(settings, m, seed=30 + n) for n, m in enumerate(ids)}
    publish(settings, [message_for(m, paths[m]) for m in ids])
    settled_on: list[int] = []

    class RecordingWorker(Worker):
        def _settle(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            settled_on.append(threading.get_ident())
            return super()._settle(*args, **kwargs)

    worker = RecordingWorker(settings)

    def stop_when_done() -> None:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            wait_for(lambda: all_completed(conn, ids), 60, "all matches")
            wait_for(lambda: len(settled_on) == len(ids), 30, "all settled")
        worker.request_stop()

    stopper = threading.Thread(target=stop_when_done)
    stopper.start()
    assert worker.run() == 0  # the consumer loop runs on this thread
    stopper.join()
    assert settled_on == [threading.get_ident()] * len(ids)


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_a_bad_message_is_dead_lettered_not_lost(
    settings: Settings, broker, launch_worker: WorkerLauncher, mode: str,
) -> None:
    publish(settings, [b"not json", b'{"match_id": 7, "file_path": "x"}'])
    worker = launch_worker(settings.replace(processing_mode=mode))
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == 2, 60, "2 in DLQ")
    assert queue_counts(broker, settings.work_queue)[:2] == (0, 0)
    assert sorted(o["reason"] for o in worker.outcomes()) == ["invalid_json", "invalid_message"]
    assert worker.terminate() == 0


def test_matches_of_other_kinds_are_recorded_as_skipped_and_acked(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(match_kinds="official,competitive")
    paths = {"off": make_match(settings, "off", seed=11, match_kind="official"),
             "cus": make_match(settings, "cus", seed=12, match_kind="custom")}
    publish(settings, [message_for(m, p) for m, p in paths.items()])
    worker = launch_worker(settings)
    wait_for(lambda: match_rows(db, "off") and match_rows(db, "cus"), 60, "both recorded")
    assert (match_rows(db, "off") or {})["status"] == "completed"
    assert (match_rows(db, "cus") or {})["status"] == "skipped"
    assert count_rows(db, "kills", "cus") == 0 < count_rows(db, "kills", "off")
    wait_for(lambda: queue_counts(broker, settings.work_queue)[:2] == (0, 0), 30, "all acked")
    assert queue_counts(broker, settings.dead_letter_queue)[0] == 0
    assert worker.terminate() == 0
