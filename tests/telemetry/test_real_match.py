"""The real recent match: every table against facts counted straight from the raw events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pewproc.telemetry.collectors.knocks import OUTCOMES
from pewproc.telemetry.extract import Extraction
from pewproc.telemetry.reader import ReadLimits, read_telemetry
from tests.telemetry.events import assert_pg_types, rows, run

LIMITS = ReadLimits(max_file_bytes=50_000_000, max_json_bytes=500_000_000, max_events=1_000_000)


@pytest.fixture(scope="module")
def events(real_match_file: Path) -> list[dict[str, Any]]:
    return read_telemetry(real_match_file, LIMITS).events


@pytest.fixture(scope="module")
def extraction(events: list[dict[str, Any]]) -> Extraction:
    return run(events)


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
    samples = [e for e in of(events, "LogPlayerPosition")
               if human(e.get("character")) and in_game(e)]
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
