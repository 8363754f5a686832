"""player_match_stats and weapon_stats, worked out by hand on a small match."""

from __future__ import annotations

import pytest

from pewproc.telemetry.collectors.common import WEAPON_CATEGORIES, weapon_category
from tests.telemetry.events import (
    by,
    char,
    damage,
    game_state,
    item_use,
    kill_v1,
    kill_v2,
    knock,
    match_end,
    match_start,
    position,
    rows,
    run,
    throw,
)

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A1, A2 = char("account.a1", 1), char("account.a2", 1)
B1, B2 = char("account.b1", 2), char("account.b2", 2)
BOT = char("ai.3", 3)


def at_xy(character: dict, x: float, y: float) -> dict:
    return char(character["accountId"], character["teamId"], x, y)


def match() -> list[dict]:
    return [
        match_start(0, A1, A2, B1, B2, BOT),
        game_state(0, (0, 0, 100), (10, 0, 50)),
        damage(1, A1, B1, 30),
        damage(2, A1, BOT, 20, causer="WeapKar98k_C"),
        damage(3, A2, A1, 5),  # team damage
        damage(4, None, A1, 7, category="Damage_BlueZone", causer="TslGameMode_LandmarkBP_C"),
        damage(5, None, A1, 3, category="Damage_Instant_Fall", causer="PlayerMale_A_C"),
        damage(6, A1, A1, 2, category="Damage_Groggy", causer="PlayerMale_A_C"),  # bleed-out
        damage(7, BOT, A1, 4),
        damage(8, A1, B2, 40, causer="ProjGrenade_C", category="Damage_Explosion_Grenade"),
        damage(9, A1, B1, 11, phase=0),  # lobby: ignored
        knock(10, A1, B1, 1),
        kill_v2(12, B1, killer=A2, knocker=A1, dbno_id=1, causer="WeapM1911_C",
                assists=("account.a1",)),
        knock(13, BOT, B2, 2),
        kill_v2(14, B2, killer=A2, knocker=BOT, dbno_id=2),  # a killsteal from the bot's team
        kill_v2(15, A2, killer=A1),  # a teamkill
        item_use(20, A1, "Item_Heal_FirstAid_C"),
        item_use(21, A1, "Item_Boost_EnergyDrink_C"),
        item_use(22, A1, "Item_Ammo_9mm_C"),
        item_use(23, A1, "Item_Heal_Bandage_C", phase=0),
        throw(24, A1, "Item_Weapon_Grenade_C"),
        throw(24, A1, "Item_Weapon_Grenade_C", kind="LogPlayerAttack"),  # same throw, logged twice
        throw(25, A1, "Item_Weapon_SmokeBomb_C"),
        throw(26, A1, "Item_Weapon_Apple_C"),  # novelty
        position(5, at_xy(A1, 1000, 0), 5, phase=0),  # lobby: ignored
        position(30, at_xy(A1, 50, 0), 30),  # 50 m from the centre, 50 m inside
        position(40, at_xy(A1, 150, 0), 40),  # 50 m outside
        position(50, at_xy(A1, 0, 100), 50),  # on the edge: inside
        position(65, at_xy(A1, 0, 0), 65),
        position(66, at_xy(BOT, 500, 0), 66),
        match_end(100, (("account.a1", 1, 2), ("account.b1", 2, 5))),
    ]


def test_player_match_stats_by_hand() -> None:
    stats = by(rows(run(match()), "player_match_stats"), "account_id")
    assert set(stats) == {"account.a1", "account.a2", "account.b1", "account.b2"}  # no bot
    a1, a2 = stats["account.a1"], stats["account.a2"]
    assert (a1["player_name"], a1["team_id"], a1["rank"], a2["rank"]) == ("a1", 1, 2, None)
    assert (a1["kills"], a1["team_kills"], a1["knocks"], a1["assists"], a1["killsteals"]) == (
        0, 1, 1, 1, 0)
    assert (a2["kills"], a2["team_kills"], a2["knocks"], a2["assists"], a2["killsteals"]) == (
        2, 0, 0, 0, 1)
    assert a1["damage_dealt"] == 30 + 20 + 40
    assert a2["damage_dealt"] == 0
    assert (a1["damage_taken_players"], a1["damage_taken_bluezone"], a1["damage_taken_fall"],
            a1["damage_taken_self_team"], a1["damage_taken_other"]) == (4, 7, 3, 5, 2)
    assert stats["account.b1"]["damage_taken_players"] == 30
    assert (a1["heals"], a1["boosts"], a1["throwables"], a1["smokes"]) == (1, 1, 2, 1)
    assert a1["throwable_damage"] == 40
    assert (a1["circle_samples"], a1["mean_dist_centre_m"], a1["max_dist_centre_m"],
            a1["mean_dist_edge_m"], a1["min_dist_edge_m"], a1["time_outside_s"]) == (
        4, pytest.approx(75.0), pytest.approx(150.0), pytest.approx(25.0), pytest.approx(-50.0),
        10.0)
    assert (a2["circle_samples"], a2["mean_dist_centre_m"], a2["time_outside_s"]) == (0, None, None)


def test_weapon_stats_by_hand() -> None:
    weapons = {(r["account_id"], r["weapon_category"]): r for r in
               rows(run(match()), "weapon_stats")}
    figures = {k: (r["damage"], r["hits"], r["knocks"], r["kills"]) for k, r in weapons.items()}
    assert figures == {
        ("account.a1", "AR"): (30.0, 1, 1, 0),
        ("account.a1", "SR"): (20.0, 1, 0, 0),
        ("account.a1", "throwable"): (40.0, 1, 0, 0),
        ("account.a2", "pistol"): (0.0, 0, 0, 1),
        ("account.a2", "AR"): (0.0, 0, 0, 1),
    }
    assert weapons[("account.a1", "AR")]["player_name"] == "a1"


def test_old_files_throwables_from_attacks_and_old_kill_layout() -> None:
    events = [
        match_start(0, A1, A2, B1),
        throw(1, A1, "Item_Weapon_Molotov_C", kind="LogPlayerAttack"),
        throw(2, A1, "Item_Weapon_SmokeBomb_C", kind="LogPlayerAttack"),
        throw(3, A1, "Item_Weapon_HK416_C", kind="LogPlayerAttack", sub_category="Main"),
        throw(4, A1, "Item_Weapon_Snowball_C", kind="LogPlayerAttack"),
        knock(10, BOT, B1, 5),
        kill_v1(12, B1, killer=A1, dbno_id=5, assistant=A2, causer="WeapMini14_C"),
    ]
    extraction = run(events)
    stats = by(rows(extraction, "player_match_stats"), "account_id")
    assert (stats["account.a1"]["throwables"], stats["account.a1"]["smokes"]) == (2, 1)
    assert (stats["account.a1"]["kills"], stats["account.a1"]["killsteals"]) == (1, 1)
    assert stats["account.a2"]["assists"] == 1
    (weapon,) = rows(extraction, "weapon_stats")
    assert (weapon["account_id"], weapon["weapon_category"], weapon["kills"]) == (
        "account.a1", "DMR", 1)


@pytest.mark.parametrize(
    ("causer", "category", "expected"),
    [
        ("WeapHK416_C", "Damage_Gun", "AR"),
        ("WeapMk12_C", "Damage_Gun", "DMR"),
        ("WeapAWM_C", "Damage_Gun", "SR"),
        ("WeapUMP_C", "Damage_Gun", "SMG"),
        ("WeapBerreta686_C", "Damage_Gun", "shotgun"),
        ("WeapM249_C", "Damage_Gun", "LMG"),
        ("WeapSawnoff_C", "Damage_Gun", "pistol"),
        ("PlayerFemale_A_C", "Damage_Punch", "melee"),
        ("WeapPan_C", "Damage_Melee", "melee"),
        ("BP_MolotovFireDebuff_C", "Damage_Molotov", "throwable"),
        ("SomeNewGrenade_C", "Damage_Explosion_Grenade", "throwable"),
        ("Dacia_A_01_v2_C", "Damage_VehicleHit", "vehicle"),
        ("WeapFutureGun_C", "Damage_Gun", "other"),
        (None, None, "other"),
    ],
)
def test_weapon_category(causer: str | None, category: str | None, expected: str) -> None:
    assert weapon_category(causer, category) == expected
    assert expected in WEAPON_CATEGORIES
