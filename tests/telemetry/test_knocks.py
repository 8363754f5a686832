"""Knock outcomes, teammate proximity and per-player finishing, on hand-made matches."""

from __future__ import annotations

import pytest

from pewproc.telemetry.collectors.knocks import distance_bucket, proximity_cells
from tests.telemetry.events import (
    NOBODY,
    at,
    by,
    char,
    kill_v1,
    kill_v2,
    knock,
    match_end,
    match_start,
    position,
    revive,
    rows,
    run,
)

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A1, A2, A5 = (char(f"account.a{i}", 1) for i in (1, 2, 5))
B1, B2 = char("account.b1", 2, 500, 0), char("account.b2", 2, 500, 120)
C1 = char("account.c1", 3)
D1, D2 = char("account.d1", 4), char("account.d2", 4)
E1 = char("account.e1", 5)


def outcomes_match() -> list[dict]:
    return [
        match_start(0, A1, A2, B1, B2, C1, D1, D2, E1),
        knock(10, A1, B1, 1, distance_m=5),
        kill_v2(15, B1, killer=A1, knocker=A1, dbno_id=1),
        knock(20, A1, B2, 2, distance_m=30),
        kill_v2(28, B2, killer=A2, knocker=A1, dbno_id=2),
        knock(30, A1, C1, 3, distance_m=150),
        kill_v2(31, C1, killer=D1, knocker=A1, dbno_id=3),
        knock(40, A2, D2, 4),
        revive(50, D1, D2, 4),
        knock(60, NOBODY, D1, -1, category="Damage_BlueZone", causer="TslGameMode_LandmarkBP_C"),
        kill_v2(70, D1, dbno_id=-1, category="Damage_BlueZone"),  # no killer, no id
        knock(80, A1, D2, 5, distance_m=250),
        kill_v2(90, E1, killer=A1),  # no knock: an instant kill
        match_end(100),
    ]


def test_each_knock_gets_its_outcome_and_time() -> None:
    knocks = rows(run(outcomes_match()), "knocks")
    got = [(k["dbno_id"], k["outcome"], k["time_to_outcome_s"], k["ended_by_account_id"])
           for k in knocks]
    assert got == [
        (1, "finished_by_knocker", 5.0, "account.a1"),
        (2, "finished_by_teammate", 8.0, "account.a2"),
        (3, "finished_by_other", 1.0, "account.d1"),
        (4, "revived", 10.0, "account.d1"),
        (-1, "died_other", 10.0, None),  # closed by the victim's death: neither has an id
        (5, "match_end", 20.0, None),
    ]
    assert knocks[-1]["outcome_at"] == at(100)
    blue = knocks[4]
    assert blue["attacker_account_id"] is None and blue["attacker_team_id"] is None
    assert blue["attacker_x_m"] is None  # the placeholder's (0, 0, 0) is no position
    assert knocks[0]["distance_m"] == 5.0 and knocks[0]["weapon"] == "WeapHK416_C"
    assert knocks[0]["victim_x_m"] == 500.0 and knocks[0]["is_team_knock"] is False


def test_player_finishing_counts_by_hand() -> None:
    finishing = by(rows(run(outcomes_match()), "player_finishing"), "account_id")
    a1 = finishing["account.a1"]
    assert (a1["knocks"], a1["finished_by_self"], a1["finished_by_team"],
            a1["finished_by_other"], a1["revived"], a1["unresolved"]) == (4, 1, 1, 1, 0, 1)
    assert a1["instant_kills"] == 1
    assert a1["conversion_rate"] == 0.5
    assert a1["mean_time_to_finish_s"] == pytest.approx((5 + 8) / 2)
    assert (a1["knocks_lt_10m"], a1["knocks_10_50m"], a1["knocks_50_100m"],
            a1["knocks_100_200m"], a1["knocks_ge_200m"]) == (1, 1, 0, 1, 1)
    a2 = finishing["account.a2"]
    assert (a2["knocks"], a2["revived"], a2["conversion_rate"], a2["knocks_10_50m"]) == (
        1, 1, 0.0, 1)
    assert a2["mean_time_to_finish_s"] is None
    d1 = finishing["account.d1"]  # finished someone else's knock; knocked only by the zone
    assert (d1["knocks"], d1["instant_kills"]) == (0, 0)


def test_old_layout_finisher_is_the_killer() -> None:
    events = [knock(10, A1, B1, 7), kill_v1(12, B1, killer=A2, dbno_id=7),
              kill_v1(20, C1, killer=A1)]
    knocks = rows(run(events), "knocks")
    assert [(k["outcome"], k["ended_by_account_id"]) for k in knocks] == [
        ("finished_by_teammate", "account.a2")]
    finishing = by(rows(run(events), "player_finishing"), "account_id")
    assert finishing["account.a1"]["finished_by_team"] == 1
    assert finishing["account.a1"]["instant_kills"] == 1


def test_knock_without_match_end_has_no_outcome_time() -> None:
    knocks = rows(run([knock(10, A1, B1, 1)]), "knocks")
    assert knocks[0]["outcome"] == "match_end" and knocks[0]["time_to_outcome_s"] is None


def test_bots_and_teammates_and_lobby_do_not_count_for_finishing() -> None:
    bot = char("ai.7", 1)
    events = [
        match_start(0, bot, A1, A2, B1, B2),
        knock(10, bot, B1, 1),  # a bot's knock
        knock(11, A1, A2, 2),  # a team knock
        knock(12, A1, B2, 3, phase=0),  # lobby
    ]
    extraction = run(events)
    assert len(rows(extraction, "knocks")) == 3
    finishing = by(rows(extraction, "player_finishing"), "account_id")
    assert "ai.7" not in finishing
    assert finishing["account.a1"]["knocks"] == 0
    assert rows(extraction, "knocks")[1]["is_team_knock"] is True


def test_teammate_proximity_from_latest_fresh_positions() -> None:
    events = [
        position(80, char("account.a4", 1, 0, 300), 80),  # stale by the knock (20 s)
        position(95, char("account.a2", 1, 30, 40), 95),  # 50 m from A1
        position(96, B2, 96),  # 120 m from B1
        position(97, char("account.a3", 1, 100, 0), 97),  # 100 m from A1
        position(99, char("account.a5", 1, 10, 0), 99),  # 10 m, but dies before the knock
        kill_v2(99.5, A5, killer=B2),
        knock(100, A1, B1, 1),
    ]
    k = rows(run(events), "knocks")[0]
    assert (k["attacker_mates_known"], k["attacker_mate_nearest_m"], k["attacker_mate_mean_m"],
            k["attacker_mate_std_m"]) == (2, 50.0, 75.0, 25.0)
    assert (k["attacker_mates_within_50m"], k["attacker_mates_within_100m"],
            k["attacker_mates_within_200m"]) == (1, 2, 2)
    assert (k["victim_mates_known"], k["victim_mate_nearest_m"], k["victim_mate_std_m"],
            k["victim_mates_within_100m"], k["victim_mates_within_200m"]) == (1, 120.0, 0.0, 0, 1)


def test_proximity_and_bucket_helpers() -> None:
    assert proximity_cells([]) == (0, None, None, None, 0, 0, 0)
    assert proximity_cells([10.0, 80.0]) == (2, 10.0, 45.0, 35.0, 1, 2, 2)
    assert [distance_bucket(d) for d in (None, 0, 9.99, 10, 50, 199.9, 200, 5000)] == [
        None, 0, 0, 1, 2, 3, 4, 4]
