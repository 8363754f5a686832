"""A worker SIGKILLed exactly at each crash window of a message's life, through failpoints.

Each test names the window, kills the worker (or its child) there, starts a fresh worker and
checks the outcome docs/reliability.md ("Crash windows") promises for that window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest
from click.testing import CliRunner

from pewproc import failpoints
from pewproc.broker.connection import connect
from pewproc.broker.deadletters import BODY_ID_PREFIX, list_dead_letters, message_id_of
from pewproc.ops.cli import main as cli
from pewproc.settings import Settings
from pewproc.telemetry.extract import output_tables
from tests.support import (
    RunningWorker,
    WorkerLauncher,
    expected_rows,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    stored_rows,
    wait_for,
)
from tests.test_faults import assert_accounted

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

PROPERTIES = dict(message_id="upstream-42", correlation_id="corr-7", timestamp=1_700_000_000,
                  app_id="telemetry-fetcher")


def failing(tmp_path: Path, spec: str) -> dict[str, str]:
    """Environment that arms failpoints, counting `N*` hits in the test's own folder."""
    return {failpoints.ENV: spec, failpoints.DIR_ENV: str(tmp_path)}


def killed(worker: RunningWorker) -> None:
    """Wait for the worker's main process to be SIGKILLed by its failpoint."""
    assert worker.process.wait(90) == -9, worker.log_path.read_text()[-3000:]
    wait_for(lambda: worker.group_alive() == [], 30, "the killed worker's children to exit")


def carried(properties: pika.BasicProperties) -> dict[str, Any]:
    return {name: getattr(properties, name) for name in PROPERTIES}


def test_parsing_of_failpoint_specs() -> None:
    actions = failpoints.parse("after_commit_before_ack=kill, inside_migration=2*sleep(0.5)")
    assert actions == {
        "after_commit_before_ack": failpoints.Action("kill"),
        "inside_migration": failpoints.Action("sleep", 2, 0.5),
    }
    assert failpoints.parse("") == {}
    with pytest.raises(ValueError, match="unknown failpoint 'nowhere'"):
        failpoints.parse("nowhere=kill")
    with pytest.raises(ValueError, match="needs an action"):
        failpoints.parse("inside_migration=explode")


def test_n_times_fires_on_the_first_hits_across_processes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    monkeypatch.setattr(failpoints, "_active", failpoints.parse("inside_migration=2*panic"))
    for _ in range(2):
        with pytest.raises(failpoints.FailpointPanic):
            failpoints.hit(failpoints.INSIDE_MIGRATION)
    failpoints.hit(failpoints.INSIDE_MIGRATION)  # the third hit passes
    failpoints.hit(failpoints.AFTER_COMMIT_BEFORE_ACK)  # not armed


def test_killed_after_copy_before_commit_the_rows_roll_back_and_the_retry_writes_once(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    tmp_path: Path,
) -> None:
    # Given a child killed inside the match's transaction, after every COPY
    path = make_match(settings, "w-copy", seed=101)
    worker = launch_worker(settings, **failing(tmp_path, "after_copy_before_commit=1*kill"))
    publish(settings, [message_for("w-copy", path)])
    # Then nothing of that attempt is stored, the message is retried, and the retry writes once
    wait_for(lambda: [o["action"] for o in worker.outcomes()] == ["retry", "ack"], 90,
             "the retry, then the ack")
    assert worker.outcomes()[0]["reason"] == "child_lost"
    assert_accounted(db, settings, broker, {"w-copy": path}, [], {"w-copy": 1})
    assert worker.terminate() == 0


def test_killed_after_commit_before_ack_the_match_is_processed_again_with_one_copy(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    tmp_path: Path,
) -> None:
    # Given a worker killed after the match's rows are committed, before its ack
    path = make_match(settings, "w-ack", seed=102)
    first = launch_worker(settings, **failing(tmp_path, "after_commit_before_ack=kill"))
    publish(settings, [message_for("w-ack", path)])
    killed(first)
    assert (match_rows(db, "w-ack") or {}).get("times_processed") == 1
    wait_for(lambda: queue_counts(broker, settings.work_queue)[:3] == (1, 0, 0), 30,
             "the broker to requeue it")
    # When a fresh worker starts
    second = launch_worker(settings)
    # Then it gets the message redelivered and processes it again: one copy of the rows
    (outcome,) = second.wait_outcomes(1)
    assert (outcome["action"], outcome["attempt"]) == ("ack", 1)
    assert_accounted(db, settings, broker, {"w-ack": path}, [], {"w-ack": 2})
    assert second.terminate() == 0


@pytest.mark.slow
def test_killed_after_the_retry_copy_before_ack_the_match_is_processed_twice_with_one_copy(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    tmp_path: Path,
) -> None:
    # Given a match whose file is still being written (transient: retried), and a worker killed
    # once the broker confirmed its retry copy, before the original's ack
    settings = settings.replace(retry_delays="4")
    path = make_match(settings, "w-retry", seed=103)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    first = launch_worker(settings, **failing(tmp_path, "after_retry_copy_before_ack=kill"))
    publish(settings, [message_for("w-retry", path)], properties=pika.BasicProperties(
        **PROPERTIES))
    killed(first)
    # Then the retry copy is in its wait queue, with the original's properties, and the original
    # is back in the work queue
    retry_queue = settings.retry_queue(4)
    wait_for(lambda: queue_counts(broker, retry_queue)[0] == 1, 10, "the retry copy")
    connection = connect(settings)
    channel = connection.channel()
    method, properties, _ = channel.basic_get(retry_queue, auto_ack=False)
    connection.close()  # puts it back
    assert method is not None and carried(properties) == PROPERTIES
    assert queue_counts(broker, settings.work_queue)[0] == 1
    # When the file is complete and a fresh worker runs
    path.write_bytes(whole)
    second = launch_worker(settings)
    # Then both the original and its retry copy are processed: twice, one copy of the rows
    outcomes = second.wait_outcomes(2, 90)
    assert sorted((o["action"], o["attempt"]) for o in outcomes) == [("ack", 1), ("ack", 2)]
    assert_accounted(db, settings, broker, {"w-retry": path}, [], {"w-retry": 2})
    assert second.terminate() == 0


def test_killed_after_the_dead_letter_before_ack_the_dlq_holds_it_twice_and_replay_sends_once(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
    tmp_path: Path,
) -> None:
    # Given a match whose file is missing (dead-lettered at once), and a worker killed once the
    # broker confirmed the dead letter, before the original's ack
    path = Path(settings.telemetry_root) / "matchID=w-dead" / "raw.json.gz"
    body = message_for("w-dead", path)
    first = launch_worker(settings, **failing(tmp_path, "after_dead_letter_before_ack=kill"))
    publish(settings, [body], properties=pika.BasicProperties(**PROPERTIES))
    killed(first)
    # When a fresh worker gets the original again
    second = launch_worker(settings)
    second.wait_outcomes(1)
    # Then the DLQ holds the failure twice, both copies with the original's properties
    connection = connect(settings)
    letters = list_dead_letters(connection, settings)
    connection.close()
    assert [(d.match_id, d.reason) for d in letters] == [("w-dead", "file_missing")] * 2
    assert [carried(d.properties) for d in letters] == [PROPERTIES] * 2
    runner, env = CliRunner(), settings.to_env()
    listed = runner.invoke(cli, ["dlq", "list", "--json"], env=env)
    assert [json.loads(line)["duplicate"] for line in listed.output.splitlines()] == [False,
                                                                                      True]
    # And a replay, once the file exists, sends the match back once and removes the duplicate
    make_match(settings, "w-dead", seed=104)
    replay = runner.invoke(cli, ["dlq", "replay", "--all"], env=env)
    assert "replayed 1 " in replay.output and "1 duplicates removed" in replay.output, (
        replay.output)
    wait_for(lambda: (match_rows(db, "w-dead") or {}).get("status") == "completed", 60, "done")
    assert_accounted(db, settings, broker, {"w-dead": path}, [], {"w-dead": 1})
    assert second.terminate() == 0


def test_a_copy_of_a_message_without_id_carries_one_derived_from_its_body(
    settings: Settings, broker, launch_worker: WorkerLauncher,
) -> None:
    bodies = [b"{not json", b"[1, 2]"]
    publish(settings, bodies)
    worker = launch_worker(settings)
    wait_for(lambda: queue_counts(broker, settings.dead_letter_queue)[0] == 2, 60, "both")
    connection = connect(settings)
    letters = list_dead_letters(connection, settings)
    connection.close()
    assert sorted(d.properties.message_id for d in letters) == sorted(
        message_id_of(None, b) for b in bodies)
    assert all(d.message_id.startswith(BODY_ID_PREFIX) for d in letters)
    assert worker.terminate() == 0


def test_killed_inside_a_migration_nothing_of_it_stays_and_the_next_run_completes(
    settings: Settings, tmp_path: Path,
) -> None:
    schema = f"t_{os.urandom(5).hex()}"
    settings = settings.replace(postgres_schema=schema)
    command = [sys.executable, "-m", "pewproc.ops.cli", "db", "migrate"]
    env = settings.to_env()
    try:
        # Given a migration killed inside its transaction
        run = subprocess.run(command, env={**env, **failing(tmp_path, "inside_migration=1*kill")},
                             capture_output=True, check=False, timeout=60)
        assert run.returncode == -9, run.stderr
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            # Then nothing of it was applied, and its lock went with its session
            assert conn.execute(f"SELECT count(*) FROM {schema}.schema_migrations"
                                ).fetchone()[0] == 0
            assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.matches",)
                                ).fetchone()[0] is None
        # When it runs again, it completes
        again = subprocess.run(command, env=env, capture_output=True, check=False, timeout=60)
        assert again.returncode == 0, again.stderr
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            for table in output_tables():
                assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table.name}",)
                                    ).fetchone()[0] is not None
    finally:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_rows_of_every_table_are_compared(settings: Settings, db: psycopg.Connection) -> None:
    """The accounting helper itself: a stored match is compared table by table."""
    path = make_match(settings, "acc", seed=105)
    assert set(expected_rows(settings, path, "acc")) == {t.name for t in output_tables()}
    assert stored_rows(db, "acc") == dict.fromkeys(expected_rows(settings, path, "acc"), 0)
