"""A short soak: the real command, its workers and its faults, against the test broker and database.

The test checks what it can see for itself, not only the soak's own report: the rows of every
table of every match, the queues the soak used, and what the soak leaves behind. The soak's
accounting is tested on its own in test_accounting.py. The full soak (hundreds of matches,
minutes of faults, broker restarts, a cluster) is run by hand: see docs/reliability.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from pewproc.broker.topology import all_queues
from pewproc.ops.soak import soak
from pewproc.processing import extract_file
from pewproc.settings import Settings
from tests.support import rabbitmqctl_table, stored_rows

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]


def run_soak(settings: Settings, out: Path, *args: str) -> tuple[int, str, dict]:
    result = CliRunner().invoke(soak, [
        *args, "--out", str(out), "--rabbitmq-host", settings.rabbitmq_host,
        "--rabbitmq-port", str(settings.rabbitmq_port), "--database-url", settings.database_url,
    ], env={"ENVIRONMENT": None, "POSTGRES_SCHEMA": None, "WORKER_POOL_SIZE": None})
    report = json.loads((out / "soak.json").read_text()) if (out / "soak.json").exists() else {}
    return result.exit_code, result.output, report


def schemas(settings: Settings) -> set[str]:
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}


def queue_names(broker) -> set[str]:  # type: ignore[no-untyped-def]
    return {row[0] for row in rabbitmqctl_table(broker, "list_queues", "name")}


def test_a_short_soak_loses_nothing_and_doubles_nothing(settings: Settings, broker,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "soak"
    code, output, report = run_soak(settings, out, "--keep",
        "--matches", "10", "--poison", "3", "--duplicates", "2", "--duration", "15",
        "--fault-interval", "2-4", "--faults", "child-kill,worker-kill", "--workers", "2",
        "--pool-size", "2", "--players", "8", "--drain-timeout", "60")
    assert code == 0, output
    assert "result: OK" in output
    schema = report["config"]["schema"]
    soaked = settings.replace(environment=report["config"]["environment"],
                              postgres_schema=schema)
    try:
        # Every good match completed, with exactly the rows its file gives in every table
        corpus = sorted(out.glob("corpus-*/matchID=*/raw.json.gz"))
        assert len(corpus) == 10
        with psycopg.connect(soaked.conninfo, autocommit=True) as conn:
            for path in corpus:
                match_id = path.parent.name.removeprefix("matchID=")
                status, times = conn.execute(
                    "SELECT status, times_processed FROM matches WHERE match_id = %s",
                    (match_id,)).fetchone()
                assert status == "completed" and times >= 1, match_id
                expected = extract_file(path, match_id, soaked)["rows"]
                stored = stored_rows(conn, match_id, schema)
                assert stored == {t: expected.get(t, 0) for t in stored}, match_id
            assert conn.execute("SELECT count(*) FROM matches WHERE status = 'completed'"
                                ).fetchone()[0] == 10
        # Its queues are gone, emptied or not
        assert not set(all_queues(soaked)) & queue_names(broker)
        # The faults it reports did strike: each worker SIGKILL meant a new worker log
        logs = list(out.glob("logs-*/worker-*.log"))
        kills = report["faults"]["by_kind"].get("worker-kill", 0)
        assert len(logs) == 2 + kills
        assert report["faults"]["injected"] > 0
        assert report["faults"]["kills_hitting_work_in_flight"] == report["faults"]["injected"]
    finally:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_soak_leaves_no_schema_and_no_queue_behind(settings: Settings, broker,
                                                     tmp_path: Path) -> None:
    before = schemas(settings)
    code, output, report = run_soak(settings, tmp_path / "soak",
        "--matches", "2", "--poison", "1", "--duplicates", "0", "--duration", "3",
        "--fault-interval", "1-2", "--faults", "worker-term", "--workers", "1",
        "--pool-size", "1", "--players", "4", "--drain-timeout", "60")
    assert code == 0, output
    assert schemas(settings) == before
    soaked = settings.replace(environment=report["config"]["environment"])
    assert not set(all_queues(soaked)) & queue_names(broker)
    assert not list((tmp_path / "soak").glob("corpus-*"))
