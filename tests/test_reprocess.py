"""`pewproc reprocess`: which matches it selects, and that a stale one runs again exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.types.json import Jsonb

from pewproc.message import MatchMessage
from pewproc.ops.cli import main
from pewproc.ops.reprocess import Selection, select_messages
from pewproc.settings import Settings
from pewproc.storage.writer import record_unsuccessful, store_match
from pewproc.telemetry.extract import output_tables
from pewproc.telemetry.version import EXTRACTOR_VERSION
from tests.support import (
    WorkerLauncher,
    make_match,
    own_schema,
    publish,
    queue_counts,
    wait_for,
)


@pytest.fixture
def schema_settings(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings) as mine:
        yield mine


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["reprocess", *args], env=settings.to_env())


def versions(conn: psycopg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute("SELECT match_id, extractor_version, times_processed, message"
                        " FROM matches").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_stale_match_is_reprocessed_once_and_the_others_are_not_touched(
    schema_settings: Settings, broker, launch_worker: WorkerLauncher,
) -> None:
    settings = schema_settings
    # Given three matches processed by this code, from messages with optional fields
    originals = {
        m: MatchMessage(match_id=m, file_path=str(make_match(settings, m, seed=40 + i)),
                        match_datetime="2025-07-12T17:00:00Z", file_size_mb=0.25,
                        downloaded_at="2025-07-12T18:00:00Z", game_type="official",
                        environment=settings.environment)
        for i, m in enumerate(("rp-old", "rp-new-1", "rp-new-2"))
    }
    publish(settings, [m.to_json() for m in originals.values()])
    worker = launch_worker(settings)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        wait_for(lambda: len([v for v in versions(conn).values() if v[0]]) == 3, 90,
                 "three matches stored")
        stored = versions(conn)
        assert {m: (v[0], v[1], v[2]) for m, v in stored.items()} == {
            m: (EXTRACTOR_VERSION, 1, o.to_dict()) for m, o in originals.items()}
        # ... and one of them written by an older extraction
        conn.execute("UPDATE matches SET extractor_version = '1' WHERE match_id = 'rp-old'")

        # When reprocess --stale runs (a dry run first shows the very message to be sent)
        dry = invoke(settings, "--stale", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.splitlines() == [originals["rp-old"].to_json().decode()]
        result = invoke(settings, "--stale", "--rate", "50")
        assert result.exit_code == 0, result.output
        assert "published 1 messages" in result.stdout

        # Then the stale match ran once more, with this code's version; the others did not
        wait_for(lambda: versions(conn)["rp-old"][:2] == (EXTRACTOR_VERSION, 2), 60,
                 "the stale match processed again")
        wait_for(lambda: queue_counts(broker, settings.work_queue) == (0, 0, 1), 30,
                 "the work queue settled")
        assert len(worker.wait_outcomes(4)) == 4
        assert {m: v[1] for m, v in versions(conn).items()} == {
            "rp-old": 2, "rp-new-1": 1, "rp-new-2": 1}
        assert invoke(settings, "--stale", "--dry-run").stdout == ""
    assert worker.terminate() == 0


def store(conn: psycopg.Connection, match_id: str, status: str = "completed",
          error_reason: str | None = None, **fields: Any) -> None:
    base = {"file_path": f"/files/{match_id}.json.gz", "extractor_version": EXTRACTOR_VERSION,
            "match_kind": "official", **fields}
    if status == "completed":
        store_match(conn, match_id, base, output_tables(), {})
    else:
        record_unsuccessful(conn, match_id, status, error_reason, None, base)


def selected(settings: Settings, **criteria: Any) -> list[str]:
    messages, _ = select_messages(settings.conninfo, Selection(**criteria))
    return [m.match_id for m in messages]


def test_each_selector_picks_its_matches(schema_settings: Settings) -> None:
    settings = schema_settings
    day = [datetime(2025, 7, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        store(conn, "m1", started_at=day[0], extractor_version="1")
        store(conn, "m2", started_at=day[1], extractor_version=None)
        store(conn, "m3", started_at=day[2], status="failed", error_reason="file_missing",
              extractor_version="1")
        store(conn, "m4", started_at=day[3], status="skipped", match_kind="custom",
              map_name="Baltic_Main", message=Jsonb({"match_id": "m4", "file_path": "/f/m4",
                                                     "game_type": "custom", "worker_id": "up"}))
        store(conn, "m5", status="failed", error_reason="invalid_json", file_path=None)
        store(conn, "m6")  # completed by this code: never stale

    assert selected(settings, stale=True) == ["m1", "m2"]  # completed, other version or none
    assert selected(settings, statuses=["failed"]) == ["m3"]  # m5 has no file to process
    assert selected(settings, reasons=["file_missing"]) == ["m3"]
    assert selected(settings, match_ids=["m4", "m2"]) == ["m2", "m4"]
    assert selected(settings, kinds=["custom"]) == ["m4"]
    assert selected(settings, since=day[1], until=day[3]) == ["m2", "m3"]
    assert selected(settings, stale=True, since=day[1]) == ["m2"]
    assert selected(settings, limit=2) == ["m1", "m2"]
    # The stored message as it came; rows from before it was stored get one from their columns
    (m4,), _ = select_messages(settings.conninfo, Selection(match_ids=["m4"]))
    assert m4.to_dict() == {"match_id": "m4", "file_path": "/f/m4", "game_type": "custom",
                            "worker_id": "up"}
    (m1,), _ = select_messages(settings.conninfo, Selection(match_ids=["m1"]))
    assert m1.to_dict() == {"match_id": "m1", "file_path": "/files/m1.json.gz",
                            "game_type": "official"}
    assert select_messages(settings.conninfo, Selection(match_ids=["m5"])) == ([], ["m5"])


def test_reprocess_wants_a_selector_and_dates_are_utc(schema_settings: Settings) -> None:
    result = invoke(schema_settings)
    assert result.exit_code == 2 and "say which matches" in result.output
    with psycopg.connect(schema_settings.conninfo, autocommit=True) as conn:
        store(conn, "late", started_at=datetime(2025, 7, 2, 23, 30, tzinfo=UTC))
    result = invoke(schema_settings, "--since", "2025-07-02T23:00:00", "--dry-run")
    assert result.stdout.splitlines() == [
        MatchMessage(match_id="late", file_path="/files/late.json.gz",
                     game_type="official").to_json().decode()]
    assert invoke(schema_settings, "--until", "2025-07-02T23:00:00", "--dry-run").stdout == ""


def test_every_row_the_worker_writes_carries_the_version_and_the_message(
    schema_settings: Settings,
) -> None:
    from pewproc.processing import Processor

    settings = schema_settings.replace(match_kinds="official")
    messages = [
        MatchMessage(match_id="v-done", game_type="official", map_name="Desert_Main",
                     file_path=str(make_match(settings, "v-done", seed=61))),
        MatchMessage(match_id="v-skip", game_type="custom",
                     file_path=str(make_match(settings, "v-skip", seed=62))),
        MatchMessage(match_id="v-fail", file_path="matchID=v-fail/missing.json.gz"),
    ]
    processor = Processor(settings)
    try:
        outcomes = [processor.process(m.to_json(), attempt=1).outcome for m in messages]
    finally:
        processor.close()
    assert outcomes == ["completed", "skipped", "failed"]
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        stored = versions(conn)
    assert {m: (v[0], v[2]) for m, v in stored.items()} == {
        m.match_id: (EXTRACTOR_VERSION, m.to_dict()) for m in messages}
