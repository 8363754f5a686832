"""damage_events: which hits are kept for the tracked players, and what a row says."""

from __future__ import annotations

import pytest

from tests.telemetry.events import at, char, damage, rows, run

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A = char("account.a", 1, 10, 20, 1)
A2 = char("account.a2", 1, 13, 24, 1)
B = char("account.b", 2, 40, 60, 0)
BOT = char("ai.1", 3)
BOT2 = char("ai.2", 4)


def match() -> list[dict]:
    return [
        damage(1, A, B, 25.5),  # human on human
        damage(2, None, A, 10, category="Damage_BlueZone", causer="TslGameMode_LandmarkBP_C"),
        damage(3, BOT, BOT2, 30),  # bots only: never kept
        damage(4, B, BOT, 12),  # an untracked human on a bot
        damage(5, A2, A, 5),  # team damage
    ]


def test_every_hit_touching_a_human_by_default() -> None:
    got = [(r["attacker_account_id"], r["victim_account_id"]) for r in
           rows(run(match()), "damage_events")]
    assert got == [("account.a", "account.b"), (None, "account.a"), ("account.b", "ai.1"),
                   ("account.a2", "account.a")]


def test_only_tracked_players_hits() -> None:
    kept = rows(run(match(), tracked=frozenset({"account.a"})), "damage_events")
    assert [r["damaged_at"] for r in kept] == [at(1), at(2), at(5)]
    assert rows(run(match(), tracked=frozenset()), "damage_events") == []


def test_row_values_in_metres_with_team_damage_flag() -> None:
    first, blue, _, team = rows(run(match()), "damage_events")
    assert (first["attacker_team_id"], first["attacker_x_m"], first["attacker_y_m"],
            first["attacker_z_m"]) == (1, 10.0, 20.0, 1.0)
    assert (first["victim_x_m"], first["victim_y_m"], first["victim_health"]) == (40.0, 60.0, 100)
    assert (first["damage"], first["damage_reason"], first["damage_category"],
            first["weapon"], first["is_team_damage"]) == (25.5, "TorsoShot", "Damage_Gun",
                                                          "WeapHK416_C", False)
    assert blue["attacker_account_id"] is None and blue["attacker_x_m"] is None
    assert blue["is_team_damage"] is False and blue["damage_category"] == "Damage_BlueZone"
    assert team["is_team_damage"] is True
    assert first["phase"] == 1.0 and first["attack_id"] == 1
