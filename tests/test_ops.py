"""The operator's surface against real services: metrics, health endpoints and every CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from pewproc.ops.cli import main as cli
from pewproc.settings import Settings
from pewproc.telemetry.extract import output_tables
from tests.pg_server import PrivatePostgres
from tests.support import (
    WorkerLauncher,
    count_rows,
    free_port,
    http_get,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    stopped,
    wait_for,
)


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    _, text = http_get(port, "/metrics")
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_expose_what_the_worker_did(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(metrics_port=free_port())
    ids = ["m1", "m2", "m3"]
    paths = {m: make_match(settings, m, seed=90 + n) for n, m in enumerate(ids)}
    publish(settings, [message_for(m, paths[m]) for m in ids] + [b"not json"])
    worker = launch_worker(settings)
    wait_for(lambda: all((match_rows(db, m) or {}).get("status") == "completed" for m in ids), 60,
             "all completed")
    wait_for(lambda: samples(settings.metrics_port).get(
        ("pewproc_dead_letters_total", (("reason", "invalid_json"),))) == 1, 30, "dead letter")
    assert sorted(o["outcome"] for o in worker.outcomes()) == ["completed"] * 3 + ["failed"]

    # Then the counters equal what the log and the database say happened
    wait_for(lambda: samples(settings.metrics_port).get(
        ("pewproc_queue_messages", (("queue", settings.work_queue),))) == 0, 30, "depth poll")
    m = samples(settings.metrics_port)
    assert m[("queue_messages_processed_total", (("outcome", "completed"),))] == 3
    assert m[("queue_messages_processed_total", (("outcome", "dead_lettered"),))] == 1
    assert m[("telemetry_processed_total", (("status", "completed"),))] == 3
    assert m[("telemetry_processed_total", (("status", "failed"),))] == 1
    assert m[("worker_errors_total", (("reason", "invalid_json"),))] == 1
    assert m[("queue_processing_duration_seconds_count", ())] == 4
    for stage in ("read", "decompress", "parse", "extract", "write"):
        assert m[("pewproc_stage_duration_seconds_count", (("stage", stage),))] == 3, stage
    total_events = db.execute(
        "SELECT sum(event_count) FROM pewproc.matches WHERE match_id = ANY(%s)", (ids,)
    ).fetchone()[0]
    assert m[("telemetry_events_extracted_total", ())] == total_events
    assert m[("pewproc_telemetry_decoded_total", (("path", "typed"),))] == 3
    assert m[("pewproc_telemetry_decoded_total", (("path", "general"),))] == 0  # exported at 0
    for table in output_tables():
        expected = sum(count_rows(db, table.name, i) for i in ids)
        assert m.get(("pewproc_rows_written_total", (("table", table.name),)), 0) == expected
    assert m[("pewproc_pool_size", ())] == 2
    assert m[("pewproc_in_flight_tasks", ())] == 0
    assert m[("pewproc_last_success_timestamp_seconds", ())] > 0
    assert m[("pewproc_queue_consumers", (("queue", settings.work_queue),))] == 1
    assert m[("pewproc_queue_messages", (("queue", settings.dead_letter_queue),))] == 1
    assert worker.terminate() == 0


def test_matches_that_took_the_general_path_are_counted() -> None:
    from pewproc.fate import Fate
    from pewproc.ops.metrics import Metrics
    from pewproc.processing import TaskResult

    metrics = Metrics()
    for path in ("typed", "general", "typed", None):  # None: failed before the file was read
        metrics.record(TaskResult("completed", decode_path=path), Fate("ack"), 0.1)
    decoded = metrics.registry.get_sample_value
    assert decoded("pewproc_telemetry_decoded_total", {"path": "general"}) == 1
    assert decoded("pewproc_telemetry_decoded_total", {"path": "typed"}) == 2


@pytest.mark.slow
def test_health_endpoints_follow_the_broker_and_the_database(
    private_pg: tuple[PrivatePostgres, Settings], broker, launch_worker: WorkerLauncher,
) -> None:
    server, settings = private_pg
    settings = settings.replace(metrics_port=free_port())
    port = settings.metrics_port
    worker = launch_worker(settings)
    worker.wait_consuming()
    assert http_get(port, "/healthz")[0] == 200
    assert wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "ready")

    # The database goes away: alive, but not ready
    with stopped(server):
        status, text = http_get(port, "/readyz")
        assert (status, "database unavailable" in text) == (503, True)
        assert http_get(port, "/healthz")[0] == 200
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "ready again")

    # The broker goes away: not ready until the worker has reconnected
    with stopped(broker):
        wait_for(lambda: http_get(port, "/readyz") == (
            503, f"not connected to the broker at {settings.broker_address}\n"), 30,
                 "not ready without the broker")
        assert http_get(port, "/healthz")[0] == 200
        lost = f"broker connection lost: {settings.broker_address} ("
        assert wait_for(lambda: any(r["message"].startswith(lost) for r in worker.log_records()),
                        30, "the loss logged with the broker's address")
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, "ready after reconnecting")
    assert http_get(port, "/nothing")[0] == 404
    assert worker.terminate() == 0


def run(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=settings.to_env())
    return result.exit_code, result.output


def test_every_cli_command_runs_against_the_real_services(
    settings: Settings, db: psycopg.Connection, broker, tmp_path: Path,
) -> None:
    corpus = Path(settings.telemetry_root) / "corpus"
    code, out = run(settings, "synth", str(corpus), "--count", "2", "--players", "6",
                    "--team-size", "2", "--duration", "200")
    assert code == 0, out
    files = sorted(corpus.rglob("raw.json.gz"))
    assert len(files) == 2

    assert run(settings, "db", "migrate") == (0, "schema pewproc: up to date\n")

    code, out = run(settings, "publish", str(corpus))
    assert code == 0 and "published 2 messages" in out
    assert queue_counts(broker, settings.work_queue)[0] == 2

    code, out = run(settings, "queue", "stats", "--json")
    assert code == 0
    stats = {row["queue"]: row for row in json.loads(out)}
    assert stats[settings.work_queue]["ready"] == 2
    assert set(stats) == {settings.work_queue, settings.dead_letter_queue,
                          *(settings.retry_queue(d) for d in settings.retry_delay_list)}

    publish(settings, [b"[]"], queue=settings.dead_letter_queue,
            headers={"x-pewproc-reason": "invalid_message", "x-pewproc-attempt": 1})
    code, out = run(settings, "dlq", "list", "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["reason"] == "invalid_message"
    assert queue_counts(broker, settings.dead_letter_queue)[0] == 1  # listing keeps them

    match_id = files[0].parent.name.removeprefix("matchID=")
    code, out = run(settings, "process", str(files[0]), "--write", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["outcome"] == "completed"
    assert (match_rows(db, match_id) or {}).get("status") == "completed"
    assert report["rows"]["kills"] == count_rows(db, "kills", match_id)

    code, out = run(settings, "dlq", "replay")
    assert code == 2 and "--reason, --match-id or --all" in out


def test_publish_warns_about_files_outside_telemetry_root(
    settings: Settings, broker, tmp_path: Path,
) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for folder in (root, elsewhere):
        (folder / "matchID=m1").mkdir(parents=True)
        (folder / "matchID=m1" / "raw.json").write_text("[]")
    settings = settings.replace(telemetry_root=str(root))
    result = CliRunner().invoke(cli, ["publish", str(root), str(elsewhere)],
                                env=settings.to_env())
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        f"warning: 1 of 2 files are outside TELEMETRY_ROOT ({root}), e.g. "
        f"{elsewhere / 'matchID=m1' / 'raw.json'}; a worker with the same TELEMETRY_ROOT "
        "dead-letters them\n")
    result = CliRunner().invoke(cli, ["publish", str(root)], env=settings.to_env())
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_queue_stats_tells_how_to_get_unacked_counts(settings: Settings, broker) -> None:
    result = CliRunner().invoke(cli, ["queue", "stats"], env=settings.to_env())
    assert result.exit_code == 0, result.output
    assert f"{settings.work_queue} " in result.stdout
    assert "set RABBITMQ_MANAGEMENT_URL (e.g. http://localhost:15672)" in result.stderr


def test_text_logs_escape_control_characters_from_messages() -> None:
    import logging

    from pewproc.ops.logs import TextFormatter

    record = logging.makeLogRecord({"msg": "match %s failed", "args": ("a\x00b\nforged line",),
                                    "levelname": "WARNING", "name": "pewproc"})
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING match a\\x00b\\x0aforged line failed"
