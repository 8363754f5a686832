"""Rules found by checking every table against real files, each on a hand-made match.

Dead players keep getting position samples (health 0, frozen where they died); PUBG re-emits the
landing of a knocked player; older files name the killer as his own assistant; a blue-zone death
keeps its cause out of `killerDamageInfo`; players who leave in the lobby are created but never
start; shotgun pellets repeat a hit's time, attack id and victim.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.telemetry.events import (
    NOBODY,
    PLANE,
    at,
    by,
    char,
    damage,
    event,
    game_state,
    info,
    kill_v1,
    kill_v2,
    knock,
    match_start,
    position,
    rows,
    run,
)

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A1, A2 = char("account.a1", 1, 0, 0), char("account.a2", 1, 30, 0)
B1, B2 = char("account.b1", 2, 60, 0), char("account.b2", 2, 90, 0)
C1 = char("account.c1", 3, 200, 0)


def corpse(character: dict) -> dict:
    """The character as PUBG logs a dead player's samples: health 0, where they died."""
    return {**character, "health": 0}


def at_place(character: dict, x: float, y: float = 0.0, health: float = 100.0) -> dict:
    return char(character["accountId"], character["teamId"], x, y, health=health)


def test_old_layout_assistant_who_is_the_killer_is_no_assist() -> None:
    events = [
        kill_v1(10, B1, killer=A1, assistant=A1),  # the usual case in older files
        kill_v1(20, A2, killer=A2, assistant=A2),  # a suicide: the same
        kill_v1(30, B2, killer=A1, assistant=C1),  # a third-team knocker: an assist
    ]
    extraction = run(events)
    stats = by(rows(extraction, "player_match_stats"), "account_id")
    assert {a: r["assists"] for a, r in stats.items() if r["assists"]} == {"account.c1": 1}
    assert [k["assists"] for k in rows(extraction, "kills")] == [None, None, "account.c1"]


def test_a_dead_teammate_is_not_near_a_knock_until_alive_again() -> None:
    events = [
        position(1, A2, 1),
        kill_v2(5, A2, killer=B1),
        position(8, corpse(A2), 8),  # the corpse is still logged, right next to A1
        knock(10, B2, A1, 1),
        position(11, at_place(A2, 20), 11),  # back to life (comeback modes)
        knock(12, B2, A1, 2),
    ]
    first, second = rows(run(events), "knocks")
    assert first["victim_mates_known"] == 0
    assert (second["victim_mates_known"], second["victim_mate_nearest_m"]) == (1, 20.0)


def test_a_dead_players_samples_are_no_circle_play() -> None:
    events = [
        game_state(1, (0, 0, 100)),
        position(2, at_place(A1, 50), 2),  # inside
        position(12, at_place(A1, 150), 12),  # outside: counts until the next sample
        kill_v2(15, A1, killer=B1),
        position(22, corpse(at_place(A1, 150)), 22),
        position(32, corpse(at_place(A1, 150)), 32),
        position(40, at_place(A1, 20), 40),  # alive again, inside
    ]
    extraction = run(events)
    assert [r["sampled_at"] for r in rows(extraction, "circle_positions")] == [
        at(2), at(12), at(40)]
    (a1,) = [r for r in rows(extraction, "player_match_stats") if r["account_id"] == "account.a1"]
    assert a1["circle_samples"] == 3
    assert a1["time_outside_s"] == 0.0  # the stretch outside ended at the death
    assert a1["min_dist_edge_m"] == pytest.approx(-50.0)
    assert a1["max_dist_centre_m"] == pytest.approx(150.0)


def test_a_blue_zone_death_keeps_its_cause_in_the_current_layout() -> None:
    zone = info("TslGameMode_LandmarkBP_C", "Damage_BlueZone", -1, "NonSpecific")
    death = kill_v2(30, A1, dbno_id=-1)
    death.update(killer=None, finisher=None, dBNOMaker=None, finishDamageInfo=zone,
                 dBNODamageInfo=dict(zone), killerDamageInfo=info("", "", -1, ""))
    old = kill_v1(40, A2, killer=NOBODY, category="Damage_BlueZone",
                  causer="TslGameMode_LandmarkBP_C")
    new_row, old_row = rows(run([death, old]), "kills")
    for row in (new_row, old_row):
        assert (row["killer_category"], row["killer_causer"]) == (
            "Damage_BlueZone", "TslGameMode_LandmarkBP_C")
        assert row["killer_account_id"] is None
    assert new_row["killer_reason"] == "NonSpecific" and new_row["killer_distance_m"] is None


def test_a_landing_echoed_by_a_knock_is_no_landing() -> None:
    def landing(t: float, character: dict, distance: float) -> dict:
        return event("LogParachuteLanding", t, PLANE, character=character, distance=distance)

    events = [
        landing(100, A1, 812.5),
        landing(101, B1, 640.0),
        knock(300, B1, A1, 1),
        landing(300, at_place(A1, 0, health=0), 812.5),  # PUBG's echo of the first landing
        landing(900, at_place(B1, 60), 320.0),  # a real redeploy
    ]
    got = [(r["account_id"], r["landing_seq"]) for r in rows(run(events), "landings")]
    assert got == [("account.a1", 1), ("account.b1", 1), ("account.b1", 2)]


def test_a_team_knock_measures_from_the_event_itself() -> None:
    events = [
        position(1, at_place(A2, 500), 1),  # A2's sample, long before it ran to A1
        knock(5, at_place(A2, 1.5), A1, 1),  # A2 knocks A1 standing 1.5 m away
    ]
    (row,) = rows(run(events), "knocks")
    assert row["is_team_knock"] is True
    assert row["victim_mate_nearest_m"] == pytest.approx(1.5)
    assert row["attacker_mate_nearest_m"] == pytest.approx(1.5)


def test_players_who_leave_in_the_lobby_are_not_on_the_roster() -> None:
    leaver = char("account.l1", 4)
    created = [event("LogPlayerCreate", 0, 0, character=c) for c in (A1, A2, B1, B2, leaver)]
    events = [*created, match_start(60, A1, A2, B1, B2), damage(100, A1, B1, 10)]
    extraction = run(events)
    assert (extraction.summary["player_count"], extraction.summary["team_count"]) == (4, 2)
    accounts = {r["account_id"] for r in rows(extraction, "player_match_stats")}
    assert accounts == {"account.a1", "account.a2", "account.b1", "account.b2"}
    # Files without LogMatchStart: the created players are the roster.
    assert run([*created, damage(100, A1, B1, 10)]).summary["player_count"] == 5


def test_shotgun_pellets_have_a_key() -> None:
    pellets = [damage(10, A1, B1, 9.5, causer="WeapBerreta686_C") for _ in range(3)]
    pellets.append(damage(10, A1, B2, 9.5, causer="WeapBerreta686_C"))
    got = rows(run(pellets), "damage_events")
    keys = Counter((r["damaged_at"], r["attack_id"], r["victim_account_id"], r["hit_seq"])
                   for r in got)
    assert len(keys) == len(got) == 4
    assert [r["hit_seq"] for r in got] == [1, 2, 3, 1]


def test_a_team_wiped_out_in_a_fight_lost_when_the_others_tie() -> None:
    c1 = at_place(C1, 120)
    events = [
        match_start(0, A1, B1, B2, c1),
        damage(1, B1, A1, 10),
        damage(2, A1, B1, 90),
        kill_v2(3, B1, killer=A1),
        damage(4, c1, B2, 90),
        kill_v2(5, B2, killer=c1),  # team 2's last member: wiped out
    ]
    extraction = run(events)
    (fight,) = rows(extraction, "fights")
    assert fight["winner_team_id"] is None
    outcomes = {r["team_id"]: r["team_outcome"] for r in rows(extraction, "fight_participants")}
    assert outcomes == {1: "draw", 2: "lost", 3: "draw"}


def test_a_landing_without_a_health_is_a_landing() -> None:
    """Files (or copies of them) without `health` keep every landing."""
    character = {k: v for k, v in A1.items() if k != "health"}
    landing = event("LogParachuteLanding", 100, PLANE, character=character, distance=812.5)
    assert len(rows(run([landing]), "landings")) == 1
