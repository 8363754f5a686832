"""Fights: clustering in time and space, the fought-back rule, winners and participants."""

from __future__ import annotations

import pytest

from pewproc.telemetry.collectors.fights import FIGHT_GAP_S, FIGHT_LINK_M
from tests.telemetry.events import at, by, char, damage, kill_v2, knock, rows, run

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A1, A2 = char("account.a1", 1, 0, 0), char("account.a2", 1, 10, 0)
B1, B2 = char("account.b1", 2, 50, 0), char("account.b2", 2, 60, 0)
C1 = char("account.c1", 3, 80, 40)


def exchange(t0: float = 0.0, dx: float = 0.0) -> list[dict]:
    """A1/A2 against B1/B2 at x+dx: hits both ways, B1 knocked and killed."""
    a1, a2 = char("account.a1", 1, dx, 0), char("account.a2", 1, dx + 10, 0)
    b1, b2 = char("account.b1", 2, dx + 50, 0), char("account.b2", 2, dx + 60, 0)
    return [
        damage(t0 + 0, a1, b1, 30),
        damage(t0 + 2, b2, a1, 20),
        knock(t0 + 4, a2, b1, 100 + int(t0)),
        damage(t0 + 5, a2, b1, 0),  # a hit on the knocked: counts as a hit with no damage
        kill_v2(t0 + 8, b1, killer=a2, knocker=a2, dbno_id=100 + int(t0)),
    ]


def test_one_exchange_is_one_fight_with_a_winner() -> None:
    extraction = run(exchange())
    (fight,) = rows(extraction, "fights")
    assert (fight["fight_id"], fight["started_at"], fight["ended_at"], fight["duration_s"]) == (
        1, at(0), at(8), 8.0)
    assert (fight["team_count"], fight["participant_count"], fight["hits"], fight["knocks"],
            fight["kills"], fight["damage"], fight["winner_team_id"]) == (2, 4, 3, 1, 1, 50.0, 1)
    # centre: mean of the midpoints of attacker and victim (25, 30, 30, 30, 30; all y = 0)
    assert (fight["centre_x_m"], fight["centre_y_m"]) == (pytest.approx(29.0), 0.0)
    assert fight["radius_m"] == pytest.approx(4.0)
    people = by(rows(extraction, "fight_participants"), "account_id")
    assert (people["account.a2"]["knocks"], people["account.a2"]["kills"],
            people["account.a2"]["hits"], people["account.a2"]["team_outcome"]) == (1, 1, 1, "won")
    b1 = people["account.b1"]
    assert (b1["damage_taken"], b1["died"], b1["team_outcome"]) == (30.0, True, "lost")
    assert (people["account.b2"]["damage_dealt"], people["account.a1"]["damage_taken"]) == (20, 20)
    assert people["account.b2"]["died"] is False and people["account.a1"]["is_bot"] is False


def test_a_one_sided_kill_is_no_fight_but_a_fought_back_one_is() -> None:
    ambush = [damage(0, A1, B1, 80), kill_v2(1, B1, killer=A1)]
    assert rows(run(ambush), "fights") == []
    answered = [damage(0, B2, A1, 10), *ambush]
    (fight,) = rows(run(answered), "fights")
    assert (fight["kills"], fight["winner_team_id"], fight["team_count"]) == (1, 1, 2)


def test_a_long_pause_splits_and_distance_splits() -> None:
    later = exchange(t0=8 + FIGHT_GAP_S + 1)
    assert [f["started_at"] for f in rows(run(exchange() + later), "fights")] == [
        at(0), at(8 + FIGHT_GAP_S + 1)]
    # Same time, other teams, far away: two fights; the same teams far away: two as well.
    far = [
        damage(1, char("account.c1", 3, 5000, 0), char("account.d1", 4, 5040, 0), 10),
        damage(2, char("account.d1", 4, 5040, 0), char("account.c1", 3, 5000, 0), 10),
    ]
    assert len(rows(run(exchange() + far), "fights")) == 2
    assert len(rows(run(exchange() + exchange(t0=1, dx=FIGHT_LINK_M * 3)), "fights")) == 2


def test_third_party_joins_the_fight() -> None:
    third = [damage(3, C1, B2, 15), damage(6, B2, C1, 5)]
    (fight,) = rows(run(exchange() + third), "fights")
    assert (fight["team_count"], fight["participant_count"], fight["hits"]) == (3, 5, 5)
    outcomes = {r["account_id"]: r["team_outcome"] for r in
                rows(run(exchange() + third), "fight_participants")}
    assert outcomes["account.c1"] == "lost" and outcomes["account.a1"] == "won"


def test_neighbouring_fights_do_not_merge_through_a_stray_shot() -> None:
    c1, d1 = char("account.c1", 3, 150, 0), char("account.d1", 4, 190, 0)
    other = [damage(0.5, c1, d1, 10), damage(1.5, d1, c1, 10)]  # centred at x = 170
    stray = [damage(3, char("account.b1", 2, 100, 0), char("account.c1", 3, 140, 0), 5)]
    fights = rows(run(exchange() + other + stray), "fights")
    assert [(f["team_count"], f["hits"]) for f in fights] == [(2, 3), (3, 3)]


def test_no_kill_is_a_draw_and_team_damage_and_lobby_make_no_fight() -> None:
    draw = [damage(0, A1, B1, 10), damage(1, B1, A1, 10)]
    (fight,) = rows(run(draw), "fights")
    assert fight["winner_team_id"] is None
    assert {r["team_outcome"] for r in rows(run(draw), "fight_participants")} == {"draw"}
    team = [damage(0, A1, A2, 10), damage(1, A2, A1, 10), kill_v2(2, A2, killer=A1)]
    assert rows(run(team), "fights") == []
    lobby = [damage(0, A1, B1, 10, phase=0), damage(1, B1, A1, 10, phase=0)]
    assert rows(run(lobby), "fights") == []


def test_bots_take_part_and_are_flagged() -> None:
    bot = char("ai.9", 7, 40, 0)
    events = [damage(0, A1, bot, 40), damage(1, bot, A1, 5), kill_v2(2, bot, killer=A1)]
    people = by(rows(run(events), "fight_participants"), "account_id")
    assert people["ai.9"]["is_bot"] is True and people["ai.9"]["died"] is True
    (fight,) = rows(run(events), "fights")
    assert (fight["bot_count"], fight["winner_team_id"]) == (1, 1)
