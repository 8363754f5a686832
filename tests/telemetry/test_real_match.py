"""The real recent match: every table against facts counted straight from the raw events."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pewproc.telemetry.collectors.knocks import OUTCOMES
from pewproc.telemetry.extract import Extraction
from pewproc.telemetry.reader import GENERAL, TYPED, ReadLimits, read_telemetry
from tests.telemetry.events import DECODE_PATHS, Decoding, assert_pg_types, rows, run

LIMITS = ReadLimits(max_file_bytes=50_000_000, max_json_bytes=500_000_000, max_events=1_000_000)


@pytest.fixture(scope="module")
def events(real_match_file: Path) -> list[dict[str, Any]]:
    """Every key of every event, as the general path reads them."""
    read = read_telemetry(real_match_file, LIMITS, typed=False)
    assert read.decode_path == GENERAL
    return read.events


@pytest.fixture(scope="module", params=DECODE_PATHS)
def extraction(request: pytest.FixtureRequest, events: list[dict[str, Any]]) -> Extraction:
    """Once per decoding path; the typed one is checked against the general one by `run`."""
    return run(events, path=request.param)


def test_the_real_match_fits_the_typed_shapes(real_match_file: Path,
                                              events: list[dict[str, Any]]) -> None:
    read = read_telemetry(real_match_file, LIMITS)
    assert read.decode_path == TYPED
    assert len(read.events) == len(events)
    assert [e._T for e in read.events] == [e["_T"] for e in events]
    run(events, path=TYPED)
    assert Decoding.taken == TYPED


def of(events: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("_T") in kinds]


def human(character: dict | None) -> str | None:
    account_id = (character or {}).get("accountId")
    return account_id if account_id and not account_id.startswith("ai.") else None


def in_game(event: dict[str, Any]) -> bool:
    return (event.get("common") or {}).get("isGame", 0) > 0


def test_every_value_fits_its_column(extraction: Extraction) -> None:
    assert_pg_types(extraction)


def test_one_row_per_kill_and_per_knock(events: list, extraction: Extraction) -> None:
    assert len(rows(extraction, "kills")) == len(of(events, "LogPlayerKillV2", "LogPlayerKill"))
    knocks = of(events, "LogPlayerMakeGroggy")
    assert len(knocks) == 23
    assert len(rows(extraction, "knocks")) == len(knocks)


def test_every_knock_has_an_outcome_that_agrees_with_the_raw_events(
    events: list, extraction: Extraction
) -> None:
    knocks = rows(extraction, "knocks")
    assert all(k["outcome"] in OUTCOMES for k in knocks)
    killed_ids = {e["dBNOId"] for e in of(events, "LogPlayerKillV2") if e.get("dBNOId", -1) != -1}
    revived_ids = {e["dBNOId"] for e in of(events, "LogPlayerRevive")}
    for k in knocks:
        if k["dbno_id"] in killed_ids:
            assert k["outcome"].startswith("finished_by") or k["outcome"] == "died_other"
        if k["dbno_id"] in revived_ids:
            assert k["outcome"] == "revived"
    assert Counter(k["outcome"] for k in knocks)["revived"] == len(revived_ids) == 1
    # A knock with an outcome time never ends before it starts.
    assert all(k["time_to_outcome_s"] >= 0 for k in knocks if k["time_to_outcome_s"] is not None)


def test_kill_counts_agree_with_pubgs_own(events: list, extraction: Extraction) -> None:
    reported: dict[str, int] = {}
    for e in of(events, "LogPlayerKillV2", "LogPlayerKill"):
        result = e.get("victimGameResult") or {}
        reported[result["accountId"]] = result["stats"]["killCount"]
    for e in of(events, "LogMatchEnd"):
        for result in e["gameResultOnFinished"]["results"]:
            reported[result["accountId"]] = result["stats"]["killCount"]
    stats = {r["account_id"]: r for r in rows(extraction, "player_match_stats")}
    assert len(reported) == 36
    assert {a: stats[a]["kills"] for a in reported} == reported
    weapon_kills: Counter[str] = Counter()
    for r in rows(extraction, "weapon_stats"):
        weapon_kills[r["account_id"]] += r["kills"]
    assert {a: weapon_kills[a] for a in reported} == reported


def test_weapon_damage_and_hits_agree_with_pubgs_weapon_stats(
    events: list, extraction: Extraction
) -> None:
    (end,) = of(events, "LogMatchEnd")
    mine: dict[str, list[float]] = {}
    for r in rows(extraction, "weapon_stats"):
        figures = mine.setdefault(r["account_id"], [0.0, 0])
        figures[0] += r["damage"]
        figures[1] += r["hits"]
    for player in end["allWeaponStats"]:
        damage = sum(s["damage"] for s in player["stats"])
        hits = sum(s["hits"] for s in player["stats"])
        got = mine.get(player["accountId"], [0.0, 0])
        assert got[0] == pytest.approx(damage, abs=1.0)  # PUBG rounds per weapon
        assert got[1] == hits


def test_damage_rows_are_the_hits_touching_humans(events: list, extraction: Extraction) -> None:
    touching = [e for e in of(events, "LogPlayerTakeDamage")
                if human(e.get("attacker")) or human(e.get("victim"))]
    assert len(rows(extraction, "damage_events")) == len(touching) == 636
    dealt = sum(e["damage"] for e in touching)
    assert sum(r["damage"] for r in rows(extraction, "damage_events")) == pytest.approx(dealt)


def test_circle_rows_are_the_human_samples_in_game(events: list, extraction: Extraction) -> None:
    samples = [e for e in living_samples(events) if human(e.get("character")) and in_game(e)]
    got = rows(extraction, "circle_positions")
    assert len(got) == len(samples)
    with_zone = [r for r in got if r["zone_radius_m"] is not None]
    assert with_zone and all(
        r["is_outside"] == (r["dist_centre_m"] > r["zone_radius_m"]) for r in with_zone
    )


def test_one_stats_row_per_human_with_pubgs_rank(events: list, extraction: Extraction) -> None:
    humans = {human(e.get("character")) for e in of(events, "LogPlayerCreate")} - {None}
    stats = {r["account_id"]: r for r in rows(extraction, "player_match_stats")}
    assert set(stats) == humans and len(humans) == 36
    (end,) = of(events, "LogMatchEnd")
    for result in end["gameResultOnFinished"]["results"]:
        assert stats[result["accountId"]]["rank"] == result["rank"]
    knocks = Counter(
        e["attacker"]["accountId"] for e in of(events, "LogPlayerMakeGroggy")
        if human(e.get("attacker")) and in_game(e)
        and e["attacker"]["teamId"] != e["victim"]["teamId"]
    )
    assert {a: r["knocks"] for a, r in stats.items() if r["knocks"]} == dict(knocks)
    finishing = {r["account_id"]: r["knocks"] for r in rows(extraction, "player_finishing")}
    assert {a: n for a, n in finishing.items() if n} == dict(knocks)
    throws = Counter(e["attacker"]["accountId"] for e in of(events, "LogPlayerUseThrowable"))
    assert {a: r["throwables"] for a, r in stats.items() if r["throwables"]} == dict(throws)


def test_fights_hold_together(extraction: Extraction) -> None:
    fights = {f["fight_id"]: f for f in rows(extraction, "fights")}
    people = rows(extraction, "fight_participants")
    assert fights and {p["fight_id"] for p in people} == set(fights)
    for fight_id, fight in fights.items():
        mine = [p for p in people if p["fight_id"] == fight_id]
        assert len(mine) == fight["participant_count"]
        assert len({p["team_id"] for p in mine}) == fight["team_count"]
        assert sum(p["kills"] for p in mine) == fight["kills"]
        assert sum(p["damage_dealt"] for p in mine) == pytest.approx(fight["damage"])
        assert fight["started_at"] <= fight["ended_at"]
    player_kills = sum(r["kills"] for r in rows(extraction, "player_match_stats"))
    assert sum(f["kills"] for f in fights.values()) <= player_kills


def living_samples(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Position samples of players not dead at the time: a kill makes its victim dead until a
    sample shows them with health above 0 again."""
    dead: set[str] = set()
    living = []
    for e in events:
        if e.get("_T") in ("LogPlayerKillV2", "LogPlayerKill"):
            dead.add(e["victim"]["accountId"])
        elif e.get("_T") == "LogPlayerPosition":
            character = e["character"]
            if character["accountId"] in dead and character["health"] > 0:
                dead.discard(character["accountId"])
            if character["accountId"] not in dead:
                living.append(e)
    return living


def test_no_corpse_in_circle_play(events: list, extraction: Extraction) -> None:
    all_samples = [e for e in of(events, "LogPlayerPosition")
                   if human(e.get("character")) and in_game(e)]
    alive = [e for e in living_samples(events) if human(e.get("character")) and in_game(e)]
    assert len(all_samples) - len(alive) == 160  # PUBG's samples of the dead
    got = rows(extraction, "circle_positions")
    assert Counter((r["account_id"], r["sampled_at"]) for r in got) == Counter(
        (e["character"]["accountId"], datetime.fromisoformat(e["_D"])) for e in alive)
    stats = {r["account_id"]: r for r in rows(extraction, "player_match_stats")}
    with_zone = Counter(r["account_id"] for r in got if r["zone_radius_m"] is not None)
    assert {a: r["circle_samples"] for a, r in stats.items() if r["circle_samples"]} == with_zone
    for account_id, r in stats.items():  # the extremes are those of the living rows
        mine = [c["dist_edge_m"] for c in got
                if c["account_id"] == account_id and c["dist_edge_m"] is not None]
        assert r["min_dist_edge_m"] == (min(mine) if mine else None)
    # Time outside: each living sample outside counts the time to the same life's next sample.
    assert sum(r["time_outside_s"] or 0.0 for r in stats.values()) == 0.0


def test_one_landing_per_player_who_landed(events: list, extraction: Extraction) -> None:
    first_distance: dict[str, float] = {}
    landed = 0
    for e in of(events, "LogParachuteLanding"):
        account_id = e["character"]["accountId"]
        if first_distance.get(account_id) == e["distance"] and e["character"]["health"] == 0:
            continue  # re-emitted at a knock
        first_distance.setdefault(account_id, e["distance"])
        landed += 1
    got = rows(extraction, "landings")
    assert len(got) == landed == 36
    assert all(r["landing_seq"] == 1 for r in got)


def test_every_kill_row_has_a_cause(events: list, extraction: Extraction) -> None:
    causes = []
    for e in of(events, "LogPlayerKillV2"):
        infos = (e.get("killerDamageInfo"), e.get("finishDamageInfo"), e.get("dBNODamageInfo"))
        causes.append(next(i["damageTypeCategory"] for i in infos
                           if i and i.get("damageTypeCategory")))
    got = rows(extraction, "kills")
    assert [r["killer_category"] for r in got] == causes
    assert sum(1 for c in causes if c == "Damage_BlueZone") >= 4


def test_the_roster_is_the_start_of_the_match(events: list, extraction: Extraction) -> None:
    (start,) = of(events, "LogMatchStart")
    roster = [(c.get("character") or c) for c in start["characters"]]
    assert extraction.summary["player_count"] == len({human(c) for c in roster} - {None})
    assert extraction.summary["team_count"] == len({c["teamId"] for c in roster})


def test_damage_events_have_a_unique_key(events: list, extraction: Extraction) -> None:
    got = rows(extraction, "damage_events")
    keys = Counter((r["damaged_at"], r["attack_id"], r["victim_account_id"]) for r in got)
    assert sum(1 for n in keys.values() if n > 1) > 0  # pellets share a key
    full = Counter((r["damaged_at"], r["attack_id"], r["victim_account_id"], r["hit_seq"])
                   for r in got)
    assert max(full.values()) == 1
    assert max(r["hit_seq"] for r in got) == max(keys.values())


def test_no_dead_teammate_is_near_a_knock(events: list, extraction: Extraction) -> None:
    (start,) = of(events, "LogMatchStart")
    team_size = Counter((c.get("character") or c)["teamId"] for c in start["characters"])
    dead: set[str] = set()
    dead_mates = []  # per knock, the victim's teammates dead by then
    for e in events:
        if e.get("_T") == "LogPlayerKillV2":
            dead.add(e["victim"]["accountId"])
        elif e.get("_T") == "LogPlayerMakeGroggy":
            team = e["victim"]["teamId"]
            dead_mates.append(sum(1 for a in dead if a in {
                (c.get("character") or c)["accountId"] for c in start["characters"]
                if (c.get("character") or c)["teamId"] == team}))
            assert team_size[team] >= 1
    knocks = rows(extraction, "knocks")
    for k, gone in zip(knocks, dead_mates, strict=True):
        assert k["victim_mates_known"] <= team_size[k["victim_team_id"]] - 1 - gone


def test_a_team_wiped_out_during_a_fight_lost_it(events: list, extraction: Extraction) -> None:
    (start,) = of(events, "LogMatchStart")
    members: dict[int, set[str]] = {}
    for c in start["characters"]:
        c = c.get("character") or c
        members.setdefault(c["teamId"], set()).add(c["accountId"])
    died = {e["victim"]["accountId"]: datetime.fromisoformat(e["_D"])
            for e in of(events, "LogPlayerKillV2")}
    wiped_at = {t: max(died[a] for a in m) for t, m in members.items() if m <= died.keys()}
    fights = {f["fight_id"]: f for f in rows(extraction, "fights")}
    checked = 0
    for p in rows(extraction, "fight_participants"):
        fight = fights[p["fight_id"]]
        at_ = wiped_at.get(p["team_id"])
        if at_ is not None and fight["started_at"] <= at_ <= fight["ended_at"]:
            assert p["team_outcome"] == "lost"
            checked += 1
    assert checked
