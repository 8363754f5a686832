"""Unit tests of the `pewproc` command line that need no broker and no database."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pewproc.ops.cli import main, match_id_of
from pewproc.settings import GROUPS, settings_fields

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


# The setting groups each command reads: what its --help must show, and nothing more.
COMMAND_GROUPS = {
    ("worker",): set(GROUPS),
    ("db", "migrate"): {"database"},
    ("publish",): {"broker", "queues", "files"},
    ("process",): {"processing", "database", "db_pool"},
    ("queue", "stats"): {"broker", "queues", "management"},
    ("dlq", "list"): {"broker", "queues"},
    ("dlq", "replay"): {"broker", "queues"},
}


@pytest.mark.parametrize("command", COMMAND_GROUPS, ids=" ".join)
def test_each_command_shows_the_settings_it_uses_and_no_other(command: tuple[str, ...]) -> None:
    output = help_text(*command)
    wanted = {f.metadata["env"] for f in settings_fields()
              if f.metadata["group"] in COMMAND_GROUPS[command]}
    shown = {env for env in SETTING_ENVS if f"env: {env};" in output}
    assert shown == wanted


def test_db_migrate_offers_database_settings_but_no_task_timeout() -> None:
    output = help_text("db", "migrate")
    assert "--postgres-host" in output and "--task-timeout" not in output


def test_durations_and_sizes_state_their_unit_and_choices_are_listed() -> None:
    output = help_text("worker")
    for option, metavar in [
        ("--shutdown-timeout", "SECONDS"), ("--task-timeout", "SECONDS"),
        ("--db-pool-timeout", "SECONDS"), ("--stats-interval", "SECONDS"),
        ("--startup-timeout", "SECONDS"), ("--rabbitmq-heartbeat", "SECONDS"),
        ("--max-json-bytes", "BYTES"), ("--max-file-bytes", "BYTES"),
        ("--processing-mode", "[parallel|sequential]"),
        ("--log-level", "[DEBUG|INFO|WARNING|ERROR]"), ("--log-format", "[text|json]"),
        ("--postgres-sslmode", "[disable|allow|prefer|require|verify-ca|verify-full]"),
    ]:
        assert f"{option} {metavar} " in output, option
    assert "env: SHUTDOWN_TIMEOUT_SECONDS; default: 60.0 seconds" in output


def test_parallel_worker_module_help_shows_its_own_usage() -> None:
    result = subprocess.run([sys.executable, "-m", "pewproc.parallel_worker", "--help"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("Usage: python -m pewproc.parallel_worker [OPTIONS]\n")
    assert "--worker-pool-size" in result.stdout


def test_dlq_list_limit_shows_its_default() -> None:
    assert "Show at most this many. [default: (all); x>=1]" in help_text("dlq", "list")


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


BAD_SETTINGS = [
    ("LOG_LEVEL", "verbose"), ("PROCESSING_MODE", "nope"), ("RABBITMQ_HEARTBEAT", "-5"),
    ("RABBITMQ_PORT", "99999"), ("TELEMETRY_ROOT", "/nonexistent"),
    ("DATABASE_URL", "host=db port=notaport"), ("RABBITMQ_URL", "amqp://h:notaport/"),
    ("TASK_TIMEOUT_SECONDS", "0"), ("WORKER_POOL_SIZE", "many"), ("POSTGRES_SSLMODE", "on"),
    ("RABBITMQ_CA_FILE", "/nonexistent.pem"),
]


def _cases() -> list[tuple[tuple[str, ...], str, str]]:
    """Every bad value, for every command that reads it."""
    groups = {f.metadata["env"]: f.metadata["group"] for f in settings_fields()}
    return [(command, env, raw) for command, used in COMMAND_GROUPS.items()
            for env, raw in BAD_SETTINGS if groups[env] in used]


@pytest.mark.parametrize(("command", "env", "raw"), _cases(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("given_as", ["env", "option"])
def test_a_bad_setting_is_one_line_naming_variable_and_option_with_exit_status_2(
    command: tuple[str, ...], env: str, raw: str, given_as: str, tmp_path: Path,
) -> None:
    field = next(f for f in settings_fields() if f.metadata["env"] == env)
    option = f"--{field.name.replace('_', '-')}"
    arguments = {"publish": [str(tmp_path)], "process": [str(write_events(tmp_path / "t.json"))]
                 }.get(command[0], [])
    if given_as == "env":
        result = run(*command, *arguments, env={env: raw})
    else:
        result = run(*command, *arguments, f"{option}={raw}")
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: {env} ({option}): "), result.output
    assert "Traceback" not in result.output


def test_a_bad_variable_a_command_does_not_use_is_ignored(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "t.json")),
                 env={"LOG_LEVEL": "verbose", "RABBITMQ_PORT": "many"})
    assert result.exit_code == 0, result.output


def test_a_non_numeric_option_is_refused_naming_its_variable(tmp_path: Path) -> None:
    result = run("process", str(write_events(tmp_path / "t.json")), "--max-events", "lots")
    assert result.exit_code == 2
    assert result.output == "Error: MAX_EVENTS (--max-events): must be a whole number, got 'lots'\n"


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
