"""The synthetic matches: deterministic, consistent as a story, PUBG-shaped, readable by the pass.

Benchmarks and collector tests lean on `pewproc.telemetry.synth`; a generator that lets the dead
shoot or miscounts kills would make them prove nothing, so the story is checked here event by
event.
"""

from __future__ import annotations

import gzip
import itertools
import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pewproc.telemetry.collectors.kills import KILLS
from pewproc.telemetry.model import parse_time
from pewproc.telemetry.reader import TYPED, ReadLimits, read_telemetry
from pewproc.telemetry.synth import (
    PLANE_PHASE,
    generate_corpus,
    generate_match,
    match_id_for,
    write_match,
)
from tests.telemetry.events import Decoding, run

Event = dict[str, Any]
KILL_TYPES = ("LogPlayerKillV2", "LogPlayerKill")
# Keys naming a player who does or suffers something in the event.
ACTOR_KEYS = ("character", "attacker", "victim", "reviver", "killer", "finisher", "dBNOMaker",
              "assistant")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.(\d{3}|\d{7})Z$")
LIMITS = ReadLimits(max_file_bytes=1 << 30, max_json_bytes=1 << 31, max_events=1_000_000)


@pytest.fixture(scope="module")
def squad() -> list[Event]:
    """A full-size official squad match: 100 players, 30 minutes, current kill layout."""
    return generate_match(7)


@pytest.fixture(scope="module")
def old_duo() -> list[Event]:
    """A smaller duo match in the old flat kill layout, with bots."""
    return generate_match(21, players=40, team_size=2, kill_layout="v1", duration_s=900, bots=10)


@pytest.fixture(scope="module", params=["squad", "old_duo"])
def match(request: pytest.FixtureRequest) -> list[Event]:
    return request.getfixturevalue(request.param)


def kills(events: list[Event]) -> list[Event]:
    return [e for e in events if e["_T"] in KILL_TYPES]


def account(character: Event | None) -> str | None:
    return character.get("accountId") or None if character else None


def match_end(events: list[Event]) -> Event:
    return next(e for e in reversed(events) if e["_T"] == "LogMatchEnd")  # logouts follow it


def survivors(events: list[Event]) -> set[str]:
    everyone = {w["character"]["accountId"] for w in match_end(events)["characters"]}
    return everyone - {account(k["victim"]) for k in kills(events)}


def test_same_seed_same_bytes_other_seed_other_match(tmp_path: Path) -> None:
    first = generate_match(5, players=24, duration_s=600)
    assert orjson.dumps(first) == orjson.dumps(generate_match(5, players=24, duration_s=600))
    assert orjson.dumps(first) != orjson.dumps(generate_match(6, players=24, duration_s=600))
    a, b = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    write_match(a, first)
    write_match(b, generate_match(5, players=24, duration_s=600))
    assert a.read_bytes() == b.read_bytes()


def test_match_id_is_a_uuid_of_the_seed(squad: list[Event]) -> None:
    match_id = match_id_for(7)
    assert str(uuid.UUID(match_id)) == match_id
    assert match_id_for(7) == match_id != match_id_for(8)
    definition = squad[0]
    assert definition["_T"] == "LogMatchDefinition" and "common" not in definition
    parts = definition["MatchId"].split(".")
    assert parts[:3] == ["match", "bro", "official"] and parts[5] == "squad-fpp"
    assert parts[-1] == match_id
    custom = generate_match(7, players=8, duration_s=300, match_kind="custom")
    assert custom[0]["MatchId"].startswith("match.bro.custom.")
    assert next(e for e in custom if e["_T"] == "LogMatchStart")["isCustomGame"] is True


def test_every_event_is_stamped_and_in_time_order(match: list[Event]) -> None:
    definition, rest = match[0], match[1:]
    assert STAMP.match(definition["_D"]) and len(definition["_D"].split(".")[1]) == len("0158674Z")
    times = [parse_time(e["_D"]) for e in rest]
    assert all(STAMP.match(e["_D"]) for e in rest)
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert parse_time(definition["_D"]) > times[0]  # later than the lobby, as PUBG writes it
    assert all(isinstance(e["common"]["isGame"], int | float) for e in rest)
    assert rest[0]["_T"] == "LogPlayerLogin"


def test_phases_rise_and_landings_happen_on_the_plane(match: list[Event]) -> None:
    phases = [e["common"]["isGame"] for e in match[1:]]
    assert all(a <= b for a, b in itertools.pairwise(phases))
    assert {0, PLANE_PHASE, 1, 1.5, 2} <= set(phases)
    landing_phases = Counter(e["common"]["isGame"] for e in match
                             if e["_T"] == "LogParachuteLanding")
    assert landing_phases[PLANE_PHASE] > sum(landing_phases.values()) / 2


def test_each_victim_dies_once_and_one_team_remains(match: list[Event]) -> None:
    victims = [account(k["victim"]) for k in kills(match)]
    assert len(victims) == len(set(victims))
    characters = [w["character"] for w in match_end(match)["characters"]]
    alive = survivors(match)
    assert alive and len(alive) + len(victims) == len(characters)
    winners = {c["teamId"] for c in characters if c["accountId"] in alive}
    assert len(winners) == 1
    assert {c["teamId"] for c in characters if c["ranking"] == 1} == winners
    ranks = {c["teamId"]: c["ranking"] for c in characters}
    assert sorted(ranks.values()) == list(range(1, len(ranks) + 1))


def test_the_dead_never_act_again(match: list[Event]) -> None:
    died_at: dict[str, int] = {}
    for i, event in enumerate(match):
        if event["_T"] in KILL_TYPES:
            died_at[event["victim"]["accountId"]] = i
    for i, event in enumerate(match):
        if event["_T"] in ("LogMatchEnd", "LogPlayerLogout") or event["_T"] in KILL_TYPES:
            continue
        if event["_T"] == "LogPlayerPosition" and event["character"]["health"] == 0:
            continue  # a corpse's sample (test_corpses_are_sampled_as_pubg_does)
        for key in ACTOR_KEYS:
            who = account(event.get(key))
            assert who is None or died_at.get(who, len(match)) > i, (event["_T"], key, who)


def test_every_knock_has_exactly_one_fate(match: list[Event]) -> None:
    knocks = [e for e in match if e["_T"] == "LogPlayerMakeGroggy"]
    assert knocks
    finished = Counter(k["dBNOId"] for k in kills(match) if k["dBNOId"] != -1)
    revived = Counter(e["dBNOId"] for e in match if e["_T"] == "LogPlayerRevive")
    alive = survivors(match)
    for knock in knocks:
        fates = finished[knock["dBNOId"]] + revived[knock["dBNOId"]]
        assert fates == 1 or (fates == 0 and account(knock["victim"]) in alive)
    assert set(finished) | set(revived) <= {k["dBNOId"] for k in knocks}


def test_knocks_only_while_a_teammate_stands(match: list[Event]) -> None:
    team_of = {account(e["character"]): e["character"]["teamId"]
               for e in match if e["_T"] == "LogPlayerCreate"}
    standing = Counter(team_of.values())
    for event in match:
        if event["_T"] == "LogPlayerMakeGroggy":
            assert standing[event["victim"]["teamId"]] > 1
        elif event["_T"] in KILL_TYPES:
            standing[event["victim"]["teamId"]] -= 1


def test_finisher_is_the_knocker_or_a_teammate(squad: list[Event]) -> None:
    knockers = {e["dBNOId"]: e["attacker"] for e in squad if e["_T"] == "LogPlayerMakeGroggy"}
    for kill in kills(squad):
        if kill["dBNOId"] != -1:
            assert kill["finisher"]["teamId"] == knockers[kill["dBNOId"]]["teamId"]
            assert account(kill["dBNOMaker"]) == account(knockers[kill["dBNOId"]])


def test_kill_counts_agree_with_the_kills(match: list[Event]) -> None:
    credited: Counter[str] = Counter()
    for kill in kills(match):
        victim = kill["victim"]["accountId"]
        assert kill["victimGameResult"]["stats"]["killCount"] == credited[victim]
        killer = account(kill["killer"])
        if killer:
            credited[killer] += 1
    results = match_end(match)["gameResultOnFinished"]["results"]  # the winners, as in PUBG
    assert results and {r["rank"] for r in results} == {1}
    for result in results:
        assert result["stats"]["killCount"] == credited[result["accountId"]]


def test_kill_layouts(squad: list[Event], old_duo: list[Event]) -> None:
    assert {e["_T"] for e in kills(squad)} == {"LogPlayerKillV2"}
    assert {e["_T"] for e in kills(old_duo)} == {"LogPlayerKill"}
    v2 = kills(squad)
    assert any(k["dBNOId"] == -1 and k["killer"] for k in v2)  # instant kills, no knock
    for kill in v2:
        if kill["dBNOId"] == -1:
            assert kill["dBNOMaker"] is None
    blue = [k for k in v2 if k["killer"] is None]
    assert blue, "expected blue-zone deaths in a full match"
    for kill in blue:
        assert kill["finisher"] is None and kill["attackId"] == -1 and kill["dBNOId"] == -1
        assert kill["finishDamageInfo"]["damageTypeCategory"] == "Damage_BlueZone"
        info = kill["killerDamageInfo"]
        assert info["damageCauserName"] == info["damageReason"] == "" and info["distance"] == -1
    knocks = {e["dBNOId"] for e in old_duo if e["_T"] == "LogPlayerMakeGroggy"}
    for kill in kills(old_duo):
        assert {"killer", "victim", "assistant", "damageCauserName", "distance"} <= kill.keys()
        assert kill["dBNOId"] == -1 or kill["dBNOId"] in knocks


def test_blue_zone_damage_has_no_attacker(squad: list[Event]) -> None:
    blue = [e for e in squad if e["_T"] == "LogPlayerTakeDamage"
            and e["damageTypeCategory"] == "Damage_BlueZone"]
    assert blue and all(e["attacker"] is None and e["victim"]["isInBlueZone"] for e in blue)
    guns = [e for e in squad if e["_T"] == "LogPlayerTakeDamage"
            and e["damageTypeCategory"] == "Damage_Gun"]
    assert guns and all(e["damageCauserName"].startswith("Weap") for e in guns)


def test_the_game_state_circles_shrink_inside_each_other(squad: list[Event]) -> None:
    states = [e["gameState"] for e in squad if e["_T"] == "LogGameStatePeriodic"]
    radii = [s["safetyZoneRadius"] for s in states]
    assert all(a >= b for a, b in itertools.pairwise(radii))
    for state in states:
        if state["poisonGasWarningRadius"]:
            safe, warn = state["safetyZonePosition"], state["poisonGasWarningPosition"]
            gap = ((safe["x"] - warn["x"]) ** 2 + (safe["y"] - warn["y"]) ** 2) ** 0.5
            assert gap + state["poisonGasWarningRadius"] <= state["safetyZoneRadius"] + 1e-6


def test_characters_are_complete_and_on_the_map(squad: list[Event]) -> None:
    size = 816000 if next(e for e in squad if e["_T"] == "LogMatchStart")["mapName"] in (
        "Baltic_Main", "Desert_Main", "Tiger_Main") else 612000
    keys = {"name", "teamId", "health", "location", "ranking", "individualRanking", "accountId",
            "isInBlueZone", "isInRedZone", "inSpecialZone", "zone", "isInVehicle", "type"}
    for event in squad:
        character = event.get("character")
        if character:
            assert set(character) == keys
            location = character["location"]
            assert 0 <= location["x"] <= size and 0 <= location["y"] <= size
    positions = [e for e in squad if e["_T"] == "LogPlayerPosition"]
    assert any(e["vehicle"] is None for e in positions)
    cars = [e["vehicle"] for e in positions if e["vehicle"]]
    assert cars and all("feulPercent" in v for v in cars)


def test_sizes(squad: list[Event]) -> None:
    assert 40_000 <= len(squad) <= 70_000
    tiny = generate_match(3, players=2, team_size=1, duration_s=300)
    assert 100 <= len(tiny) <= 900
    assert len(kills(tiny)) == 1
    mix = Counter(e["_T"] for e in squad)
    landed = [e for e in squad if e["_T"] == "LogParachuteLanding"
              and e["character"]["health"] > 0]
    assert len(landed) == mix["LogPlayerCreate"] == 100
    for kind in ("LogPlayerPosition", "LogPlayerTakeDamage", "LogItemPickup", "LogPlayerAttack",
                 "LogHeal", "LogItemUse", "LogVehicleRide", "LogPlayerUseThrowable",
                 "LogPlayerRevive", "LogItemEquip", "LogItemDrop", "LogObjectInteraction"):
        assert mix[kind] > 0, kind
    assert mix["LogPlayerPosition"] > mix["LogPlayerKillV2"] * 50


def test_bots_have_ai_ids(old_duo: list[Event]) -> None:
    ids = [e["character"]["accountId"] for e in old_duo if e["_T"] == "LogPlayerCreate"]
    bots = [i for i in ids if i.startswith("ai.")]
    assert len(bots) == 10
    assert all(re.fullmatch(r"account\.[0-9a-f]{32}", i) for i in ids if i not in bots)


@pytest.mark.parametrize(("compression", "magic", "layers"),
                         [("gzip", b"\x1f\x8b", 1), ("double-gzip", b"\x1f\x8b", 2),
                          ("none", b"[", 0)])
def test_write_match_round_trips(tmp_path: Path, compression: str, magic: bytes,
                                 layers: int) -> None:
    events = generate_match(9, players=8, duration_s=300)
    path = tmp_path / "raw.json.gz"
    written = write_match(path, events, compression=compression)
    raw = path.read_bytes()
    assert written == len(raw) and raw.startswith(magic)
    for _ in range(layers):
        assert raw.startswith(b"\x1f\x8b")
        raw = gzip.decompress(raw)
    assert raw.startswith(b"[") and orjson.loads(raw) == events
    assert read_telemetry(path, LIMITS, typed=False).events == events


def test_corpus_layout(tmp_path: Path) -> None:
    corpus = generate_corpus(tmp_path, 2, 40, players=8, duration_s=300)
    assert [match_id for match_id, _ in corpus] == [match_id_for(40), match_id_for(41)]
    for match_id, path in corpus:
        assert path == tmp_path / f"matchID={match_id}" / "raw.json.gz"
        events = read_telemetry(path, LIMITS).events
        assert events[0].MatchId.endswith(match_id)


def test_the_collectors_accept_it(match: list[Event]) -> None:
    extraction = run(match, path=TYPED)  # and the general path, which must agree
    assert Decoding.taken == TYPED
    kill_events = kills(match)
    rows = extraction.tables["kills"]
    assert len(rows) == len(kill_events)
    assert len(extraction.tables["landings"]) == sum(
        1 for e in match if e["_T"] == "LogParachuteLanding" and e["character"]["health"] > 0)
    knocker = KILLS.column_names.index("knocker_account_id")
    assert sum(r[knocker] is not None for r in rows) == sum(
        1 for k in kill_events if k["dBNOId"] != -1)
    summary = extraction.summary
    start = next(e for e in match if e["_T"] == "LogMatchStart")
    assert summary["match_kind"] == "official" and summary["map_name"] == start["mapName"]
    assert summary["team_size"] == start["teamSize"]
    assert summary["player_count"] + summary["bot_count"] == len(start["characters"])


_END = datetime.max.replace(tzinfo=UTC)


def test_quirks_of_real_files_are_reproduced(match: list[Event]) -> None:
    """Dead players are sampled for a while, health 0 where they died; a knock re-emits the
    knocked player's landing; older files name the killer as assistant when nobody helped."""
    deaths = {k["victim"]["accountId"]: (parse_time(k["_D"]), k["victim"]["location"])
              for k in kills(match)}
    corpses = [e for e in match if e["_T"] == "LogPlayerPosition"
               and parse_time(e["_D"]) >= deaths.get(e["character"]["accountId"], (_END,))[0]]
    assert corpses
    for e in corpses:
        died, where = deaths[e["character"]["accountId"]]
        assert (parse_time(e["_D"]) - died).total_seconds() < 60
        assert e["character"]["health"] == 0 and e["character"]["location"] == where
    first: dict[str, float] = {}
    echoes = 0
    for e in match:
        if e["_T"] == "LogParachuteLanding":
            account_id = e["character"]["accountId"]
            if account_id in first:
                assert e["character"]["health"] == 0 and e["distance"] == first[account_id]
                echoes += 1
            first.setdefault(account_id, e["distance"])
    assert echoes
    for k in kills(match):
        if k["_T"] == "LogPlayerKill" and k["killer"]["accountId"]:
            assert k["assistant"]["accountId"]  # the killer, or a teammate who helped
