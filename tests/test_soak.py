"""A short soak: the real command, its workers and its faults, against the test broker and database.

The full soak (hundreds of matches, minutes of faults, broker and database restarts) is run by
hand: see docs/reliability.md, "Soak run".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pewproc.ops.soak import soak
from pewproc.settings import Settings


@pytest.mark.slow
def test_a_short_soak_loses_nothing_and_doubles_nothing(settings: Settings,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "soak"
    result = CliRunner().invoke(soak, [
        "--matches", "10", "--poison", "3", "--duplicates", "2", "--duration", "15",
        "--fault-interval", "2-4", "--faults", "child-kill,worker-kill", "--workers", "2",
        "--pool-size", "2", "--players", "8", "--drain-timeout", "60", "--out", str(out),
        "--rabbitmq-host", settings.rabbitmq_host,
        "--rabbitmq-port", str(settings.rabbitmq_port),
        "--database-url", settings.database_url,
    ], env={"ENVIRONMENT": None, "POSTGRES_SCHEMA": None, "WORKER_POOL_SIZE": None})
    assert result.exit_code == 0, result.output
    assert "result: OK" in result.output

    report = json.loads((out / "soak.json").read_text())
    assert report["ok"], report["checks"]
    assert report["lost"]["total"] == 0
    assert report["duplicated"]["total"] == 0
    assert report["faults"]["injected"] > 0
    assert set(report["faults"]["by_kind"]) == {"child-kill", "worker-kill"}
    published = report["published"]
    assert (published["good"], published["duplicates"], published["poison"]) == (10, 2, 3)
    assert published["total"] == published["confirmed"] == 15
    assert report["processed"]["completed_exact"] == 10
    assert report["dead_lettered"]["poison_expected_reason"] == 3
    assert report["dead_lettered"]["total"] >= 3
    assert report["workers"]["final_exit_codes"] == [0, 0]
    # Its own queues and schema: gone at the end.
    assert report["config"]["environment"].startswith("soak-")
    assert report["config"]["schema"].startswith("pewproc_soak_")
