"""Unit tests of the `pewproc` command line that need no broker and no database."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pewproc.ops.cli import main, match_id_of
from pewproc.settings import settings_fields

SETTING_ENVS = [f.metadata["env"] for f in settings_fields()]
SETTINGS_COMMANDS = [["worker"], ["db", "migrate"], ["publish"], ["process"]]
ALL_COMMANDS = [[], ["db"], *SETTINGS_COMMANDS, ["synth"]]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read os.environ: start every test from no pewproc setting at all."""
    for env in SETTING_ENVS:
        monkeypatch.delenv(env, raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)


def help_text(*command: str, env: dict[str, str] | None = None) -> str:
    """The help of a command with its line wrapping undone."""
    result = run(*command, "--help", env=env)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


# Help


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "pewproc")
def test_help_of_every_command_exits_zero(command: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = run(*command, flag)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: ")


def test_group_help_lists_every_subcommand() -> None:
    output = run("--help").output
    for name in ("worker", "db", "publish", "process", "synth"):
        assert f"  {name} " in output


@pytest.mark.parametrize("command", SETTINGS_COMMANDS, ids=" ".join)
def test_help_of_commands_with_settings_names_every_environment_variable(
    command: list[str],
) -> None:
    output = help_text(*command)
    missing = [env for env in SETTING_ENVS if f"env: {env};" not in output]
    assert not missing


def test_worker_help_names_the_pool_size_variable_and_its_options() -> None:
    output = help_text("worker")
    assert "env: WORKER_POOL_SIZE;" in output
    assert "--worker-pool-size" in output and "--pool-size" in output
    assert "--prefetch-count" in output and "--prefetch" in output
    assert "--sequential" in output


def test_help_hides_secret_defaults_and_environment_values() -> None:
    output = help_text("worker", env={"RABBITMQ_PASSWORD": "topsecret-1"})
    assert "topsecret-1" not in output
    assert "env: RABBITMQ_PASSWORD; default: (hidden)" in output
    assert "env: RABBITMQ_HOST; default: 'localhost'" in output


# Bad settings are usage errors


def test_a_bad_processing_mode_option_is_a_usage_error() -> None:
    result = run("worker", "--processing-mode", "nope")
    assert result.exit_code == 2
    assert "PROCESSING_MODE must be 'parallel' or 'sequential', not 'nope'" in result.output


def test_a_bad_setting_from_the_environment_is_a_usage_error() -> None:
    result = run("db", "migrate", env={"WORKER_POOL_SIZE": "many"})
    assert result.exit_code == 2
    assert "WORKER_POOL_SIZE must be a number, got 'many'" in result.output


def test_a_non_numeric_option_is_refused_by_click(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "t.json")), "--max-events", "lots")
    assert result.exit_code == 2
    assert "--max-events" in result.output


def test_an_invalid_combination_of_options_is_a_usage_error(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "t.json")),
                 "--db-pool-min-size", "3", "--db-pool-max-size", "2")
    assert result.exit_code == 2
    assert "DB_POOL_MIN_SIZE" in result.output


# match_id_of


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/telemetry/matchID=abc/raw.json.gz", "abc"),
        ("matchID=abc/raw.json.gz", "abc"),
        ("/data/matchID=abc/nested/raw.json", "abc"),
        ("/data/matchID=outer/matchID=inner/raw.json.gz", "inner"),
        ("/data/abc.json.gz", "abc"),
        ("abc.json", "abc"),
        ("c2fb5093-1111", "c2fb5093-1111"),
        ("/data/matchID=abc", "matchID=abc"),  # only folders name the match
    ],
)
def test_match_id_of(path: str, expected: str) -> None:
    assert match_id_of(Path(path)) == expected


# pewproc process FILE --json


def character(account_id: str, team_id: int) -> dict[str, Any]:
    return {
        "name": account_id.split(".")[-1], "teamId": team_id, "health": 100.0,
        "location": {"x": 100000.0, "y": 200000.0, "z": 500.0}, "ranking": 0,
        "accountId": account_id, "isInBlueZone": False, "isInRedZone": False, "zone": [],
    }


def damage_info() -> dict[str, Any]:
    return {"damageReason": "HeadShot", "damageTypeCategory": "Damage_Gun",
            "damageCauserName": "WeapHK416_C", "additionalInfo": [], "distance": 2500.0,
            "isThroughPenetrableWall": False}


def tiny_match() -> list[dict[str, Any]]:
    alice, bob = character("account.alice", 1), character("account.bob", 2)
    return [
        {"MatchId": "match.bro.official.pc-2018-04.steam.duo-fpp.eu.2025.07.12.17.abc",
         "PingQuality": "low", "SeasonState": "progress",
         "_D": "2025-07-12T17:00:05.000Z", "_T": "LogMatchDefinition"},
        {"mapName": "Baltic_Main", "weatherId": "Clear",
         "characters": [{"character": alice}, {"character": bob}],
         "cameraViewBehaviour": "FpsOnly", "teamSize": 2, "isCustomGame": False,
         "isEventMode": False, "blueZoneCustomOptions": "[]", "common": {"isGame": 0},
         "_D": "2025-07-12T17:00:00.000Z", "_T": "LogMatchStart"},
        {"character": alice, "distance": 1234.5, "common": {"isGame": 0.10000000149011612},
         "_D": "2025-07-12T17:01:00.000Z", "_T": "LogParachuteLanding"},
        {"attackId": 7, "dBNOId": -1, "victim": bob, "victimGameResult": {},
         "victimWeapon": "", "victimWeaponAdditionalInfo": [], "victimVehicle": None,
         "dBNOMaker": None, "dBNODamageInfo": None, "finisher": alice,
         "finishDamageInfo": damage_info(), "killer": alice, "killerDamageInfo": damage_info(),
         "killerVehicle": None, "assists_AccountId": [], "teamKillers_AccountId": [],
         "isSuicide": False, "common": {"isGame": 1.0},
         "_D": "2025-07-12T17:05:00.000Z", "_T": "LogPlayerKillV2"},
    ]


def write_events(path: Path, *, gzipped: bool = False) -> Path:
    data = json.dumps(tiny_match()).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def test_process_json_reports_row_counts_matching_the_events(tmp_path: Path) -> None:
    path = write_events(tmp_path / "matchID=m-123" / "raw.json.gz", gzipped=True)
    result = run("process", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["match_id"] == "m-123"
    assert report["events"] == 4
    rows = report["rows"]
    assert rows["landings"] == 1
    assert rows["kills"] == 1
    assert rows["knocks"] == 0
    assert rows["damage_events"] == 0
    assert rows["circle_positions"] == 0
    assert rows["player_match_stats"] == 2  # alice and bob, from LogMatchStart
    assert set(report["stages"]) == {"read", "decompress", "parse", "extract"}
    summary = report["summary"]
    assert summary["event_count"] == 4
    assert summary["match_kind"] == "official"
    assert summary["game_mode"] == "duo-fpp"
    assert summary["map_name"] == "Baltic_Main"
    assert summary["player_count"] == 2


def test_process_match_id_option_wins_over_the_path(tmp_path: Path) -> None:
    path = write_events(tmp_path / "plain.json")
    result = run("process", str(path), "--json", "--match-id", "given")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["match_id"] == "given"
    assert report["rows"]["kills"] == 1


def test_process_without_json_prints_a_table(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "plain.json")))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("match plain: extracted, 4 events")
    assert any(line.split() == ["landings", "1", "rows"] for line in result.output.splitlines())


def test_process_applies_the_event_limit(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "plain.json")), "--json",
                 env={"MAX_EVENTS": "3"})
    assert result.exit_code == 1
    assert "too_many_events" in result.output
    assert "Traceback" not in result.output


def test_process_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("process", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "does not exist" in result.output
