"""TRACKED_PLAYERS=table: the players CLI, the per-process cache, and the worker end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from pewproc.errors import TransientError
from pewproc.ops.cli import main
from pewproc.settings import Settings
from pewproc.storage.tracked import TrackedPlayers
from pewproc.telemetry.synth import generate_match
from tests.support import (
    WorkerLauncher,
    make_match,
    message_for,
    own_schema,
    publish,
    wait_for,
)


@pytest.fixture
def table_settings(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings.replace(tracked_players="table")) as mine:
        yield mine


def players_cli(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["players", *args], env=settings.to_env())


def test_players_add_list_remove(table_settings: Settings) -> None:
    settings = table_settings
    assert players_cli(settings, "add", "account.1", "account.2", "--name", "Pat").stdout == (
        "added 2, 0 already tracked\n")
    assert players_cli(settings, "add", "account.2").stdout == "added 0, 1 already tracked\n"
    listed = players_cli(settings, "list", "--json").stdout.splitlines()
    assert [line.split('"account_id": ')[1].split(",")[0] for line in listed] == [
        '"account.1"', '"account.2"']
    assert all('"player_name": "Pat"' in line for line in listed)  # kept when re-added unnamed
    assert players_cli(settings, "remove", "account.1", "account.9").stdout == (
        "removed 1, 1 were not tracked\n")
    assert "account.2" in players_cli(settings, "list").stdout
    # A command against a schema never migrated says what to do, in one line.
    missing = players_cli(settings.replace(postgres_schema="nowhere"), "list")
    assert missing.exit_code == 1 and "run `pewproc db migrate`" in missing.output


def test_each_process_reads_the_table_at_most_once_per_period(table_settings: Settings) -> None:
    settings = table_settings.replace(tracked_players_refresh=300.0)
    now = [1000.0]
    reads = [0]

    def connect() -> Any:
        reads[0] += 1
        return psycopg.connect(settings.conninfo, autocommit=True)

    tracked = TrackedPlayers(settings, clock=lambda: now[0])
    assert tracked.current(connect) == frozenset()
    players_cli(settings, "add", "account.1")
    now[0] += 299.0
    assert tracked.current(connect) == frozenset() and reads[0] == 1  # cached
    now[0] += 1.0
    assert tracked.current(connect) == frozenset({"account.1"}) and reads[0] == 2
    # The env list, '*' and 'none' need no database.
    for value, expected in (("account.7,account.8", frozenset({"account.7", "account.8"})),
                            ("*", None), ("none", frozenset())):
        fixed = TrackedPlayers(settings.replace(tracked_players=value))
        assert fixed.current(connect) == expected
    assert reads[0] == 2
    # An unreadable table is a transient failure, never an empty set.
    nowhere = settings.replace(postgres_schema="nowhere")
    with pytest.raises(TransientError) as failure:
        TrackedPlayers(nowhere).current(lambda: psycopg.connect(nowhere.conninfo))
    assert failure.value.reason == "tracked_players_unavailable"


def humans_of(seed: int) -> list[str]:
    events = generate_match(seed, players=8, team_size=2, duration_s=300.0)
    (start,) = [e for e in events if e["_T"] == "LogMatchStart"]
    return sorted((c.get("character") or c)["accountId"] for c in start["characters"])


def stored_accounts(conn: psycopg.Connection, match_id: str) -> tuple[int, set[str], set[str]]:
    """(damage rows, accounts on either side of them, accounts of circle rows) of a match."""
    hits = conn.execute("SELECT attacker_account_id, victim_account_id FROM damage_events"
                        " WHERE match_id = %s", (match_id,)).fetchall()
    circle = conn.execute("SELECT DISTINCT account_id FROM circle_positions WHERE match_id = %s",
                          (match_id,)).fetchall()
    return len(hits), {a for pair in hits for a in pair if a}, {r[0] for r in circle}


def test_the_worker_tracks_the_players_of_the_table_and_retries_when_it_is_unreadable(
    table_settings: Settings, launch_worker: WorkerLauncher,
) -> None:
    settings = table_settings.replace(tracked_players_refresh=0.0)
    chosen = humans_of(51)[0]
    assert players_cli(settings, "add", chosen).exit_code == 0
    first = make_match(settings, "tp-1", seed=51)
    publish(settings, [message_for("tp-1", first)])
    worker = launch_worker(settings)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        def status(match_id: str) -> str | None:
            row = conn.execute("SELECT status FROM matches WHERE match_id = %s",
                               (match_id,)).fetchone()
            return row[0] if row else None

        wait_for(lambda: status("tp-1") == "completed", 90, "tp-1 completed")
        hits, hit_accounts, circle_accounts = stored_accounts(conn, "tp-1")
        assert hits > 0 and chosen in hit_accounts and circle_accounts == {chosen}
        hit_rows = conn.execute(
            "SELECT count(*) FROM damage_events WHERE match_id = 'tp-1'"
            " AND %s NOT IN (coalesce(attacker_account_id, ''), victim_account_id)",
            (chosen,)).fetchone()[0]
        assert hit_rows == 0  # every stored hit touches the tracked player

        # When the table cannot be read, the match is retried, not stored with nobody tracked
        conn.execute("ALTER TABLE tracked_players RENAME TO tracked_players_away")
        second = make_match(settings, "tp-2", seed=52)
        publish(settings, [message_for("tp-2", second)])
        retried = wait_for(lambda: [o for o in worker.outcomes() if o["match_id"] == "tp-2"],
                           60, "tp-2 attempted")
        assert (retried[0]["action"], retried[0]["reason"]) == (
            "retry", "tracked_players_unavailable")
        assert status("tp-2") is None
        assert any("tracked_players table cannot be read" in r["message"]
                   for r in worker.log_records())

        # Then, the table back, the retry stores the match with its tracked player's rows
        conn.execute("ALTER TABLE tracked_players_away RENAME TO tracked_players")
        other = humans_of(52)[1]
        assert players_cli(settings, "add", other).exit_code == 0
        wait_for(lambda: status("tp-2") == "completed", 90, "tp-2 completed on retry")
        hits, hit_accounts, circle_accounts = stored_accounts(conn, "tp-2")
        assert hits > 0 and circle_accounts == {other}
    assert worker.terminate() == 0


def test_process_reads_the_table_too(table_settings: Settings) -> None:
    """`pewproc process FILE` extracts with the table's players as the worker would."""
    path = make_match(table_settings, "tp-cli", seed=53)
    env = table_settings.to_env()
    report = CliRunner().invoke(main, ["process", str(path), "--json"], env=env)
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["rows"]["circle_positions"] == 0  # nobody tracked yet
    players_cli(table_settings, "add", humans_of(53)[0])
    report = CliRunner().invoke(main, ["process", str(path), "--json"], env=env)
    assert json.loads(report.stdout)["rows"]["circle_positions"] > 0
