"""Readers the combat collectors share, written for the hot path (called once per event).

Blue-zone knocks carry a placeholder `attacker` with an empty account id, team 0 and location
(0, 0, 0); `actor` and `body` turn it, a `null` and a missing character alike into None, so no
placeholder ever becomes a player, a team or a position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pewproc.telemetry.model import CM_PER_M, Event, MatchContext, Player, phase


def actor(character: Event | None) -> tuple[str, int | None] | None:
    """(account id, team id) of a real character; None for absent ones and placeholders."""
    if not character:
        return None
    account_id = character.accountId
    if not account_id:
        return None
    return account_id, character.teamId


def in_game(event: Event) -> bool:
    """The match proper (isGame > 0: the plane and after); the lobby's scuffles do not count."""
    common = event.common
    if not common:
        return False
    value = common.isGame
    if value.__class__ is float or value.__class__ is int:  # isinstance of a union is slow
        return value > 0  # type: ignore[no-any-return]
    return isinstance(value, (int, float)) and value > 0


class Tracked(dict[Any, bool]):
    """account id -> `ctx.is_tracked(account id)`, each answered once: a hit asks twice."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__()
        self.ctx = ctx

    def __missing__(self, account_id: Any) -> bool:
        tracked = self[account_id] = self.ctx.is_tracked(account_id)
        return tracked


def is_enemy(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Two different players on different known teams (of `actor` pairs or `Body`s)."""
    return a[0] != b[0] and a[1] is not None and b[1] is not None and a[1] != b[1]


def is_teammate(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Two different players on one known team (of `actor` pairs or `Body`s)."""
    return a[0] != b[0] and a[1] is not None and a[1] == b[1]


def old_layout_assists(event: Event) -> tuple[str, ...]:
    """The assistant of a LogPlayerKill, as PUBG's assists count: older files name the killer
    himself there in most kills (suicides included), which is no assist."""
    assistant = event.assistant
    account_id = assistant.accountId if assistant else None
    if not account_id:
        return ()
    for role in ("killer", "victim"):
        other = getattr(event, role)
        if other and other.accountId == account_id:
            return ()
    return (account_id,)


# A real character as the hot collectors need it: (account id, team id, x m, y m, z m). A plain
# tuple, not a NamedTuple: one is built for each side of every hit and every position sample, and
# a NamedTuple costs half as much again.
Body = tuple[str, int | None, float | None, float | None, float | None]


def body(character: Event | None) -> Body | None:
    """The character as a Body; None for absent characters and placeholders."""
    account_id = character.accountId if character else None
    if not account_id:
        return None
    loc = character.location  # type: ignore[union-attr]
    try:  # a complete location, as nearly all are: no None tests
        return (account_id, character.teamId,  # type: ignore[union-attr]
                loc.x / CM_PER_M, loc.y / CM_PER_M, loc.z / CM_PER_M)
    except (AttributeError, TypeError):
        if loc and not isinstance(loc, dict):  # neither an object nor null: odd, and fails
            raise
    x, y, z = (loc.x, loc.y, loc.z) if loc else (None, None, None)
    return (
        account_id,
        character.teamId,  # type: ignore[union-attr]
        x / CM_PER_M if x is not None else None,
        y / CM_PER_M if y is not None else None,
        z / CM_PER_M if z is not None else None,
    )


# Events that several collectors read in full are decoded once, by the dispatch, and their
# handlers get the decoded form instead of the bare event: a hit is read by three collectors,
# a position sample by three, and each read every key it wanted again (dict lookups were a
# third of extraction's CPU). The event stays first, for whatever else a collector wants of it.
Hit = tuple[Event, float | None, Event | None, Event | None, Body | None, Body | None]
Sample = tuple[Event, float | None, Event | None, Body | None]


def hit(event: Event) -> Hit:
    """A LogPlayerTakeDamage as (event, phase, attacker, victim, attacker Body, victim Body)."""
    attacker_c, victim_c = event.attacker, event.victim
    return event, phase(event), attacker_c, victim_c, body(attacker_c), body(victim_c)


def sample(event: Event) -> Sample:
    """A LogPlayerPosition as (event, phase, character, its Body)."""
    character = event.character
    return event, phase(event), character, body(character)


DECODERS: dict[str, Callable[[Event], Any]] = {
    "LogPlayerTakeDamage": hit,
    "LogPlayerPosition": sample,
}


# Weapon categories. A damageCauserName names the weapon class exactly (pubg-assets'
# damageCauserName dictionary); anything it does not name falls back to damageTypeCategory
# (punches, grenades and vehicles are told by the kind of damage), then to "other".
_CAUSER_CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        (
            "WeapACE32_C", "WeapAK47_C", "WeapAUG_C", "WeapBerylM762_C", "WeapDuncansHK416_C",
            "WeapG36C_C", "WeapGroza_C", "WeapHK416_C", "WeapK2_C", "WeapLunchmeatsAK47_C",
            "WeapM16A4_C", "WeapMk47Mutant_C", "WeapQBZ95_C", "WeapSCAR-L_C",
        ),
        "AR",
    ),
    **dict.fromkeys(
        (
            "WeapDragunov_C", "WeapFNFal_C", "WeapMadsQBU88_C", "WeapMini14_C", "WeapMk12_C",
            "WeapMk14_C", "WeapQBU88_C", "WeapSKS_C", "WeapVSS_C",
        ),
        "DMR",
    ),
    **dict.fromkeys(
        (
            "WeapAWM_C", "WeapJuliesKar98k_C", "WeapKar98k_C", "WeapL6_C", "WeapM24_C",
            "WeapMosinNagant_C", "WeapWin94_C",
        ),
        "SR",
    ),
    **dict.fromkeys(
        (
            "WeapBizonPP19_C", "WeapJS9_C", "WeapMP5K_C", "WeapMP9_C", "WeapP90_C",
            "WeapThompson_C", "WeapUMP_C", "WeapUZI_C", "WeapVector_C",
        ),
        "SMG",
    ),
    **dict.fromkeys(
        ("WeapBerreta686_C", "WeapDP12_C", "WeapOriginS12_C", "WeapSaiga12_C",
         "WeapWinchester_C"),
        "shotgun",
    ),
    **dict.fromkeys(("WeapDP28_C", "WeapM249_C", "WeapMG3_C"), "LMG"),
    # The sawed-off is a sidearm in PUBG (its item subCategory is "Handgun").
    **dict.fromkeys(
        (
            "WeapDesertEagle_C", "WeapG18_C", "WeapM1911_C", "WeapM9_C", "WeapNagantM1895_C",
            "WeapRhino_C", "WeapSawnoff_C", "Weapvz61Skorpion_C",
        ),
        "pistol",
    ),
    **dict.fromkeys(
        (
            "WeapCowbar_C", "WeapCowbarProjectile_C", "WeapMachete_C", "WeapMacheteProjectile_C",
            "WeapPan_C", "WeapPanProjectile_C", "WeapSickle_C", "WeapSickleProjectile_C",
        ),
        "melee",
    ),
    **dict.fromkeys(
        (
            "ProjGrenade_C", "ProjMolotov_C", "ProjMolotov_DamageField_Direct_C",
            "BP_MolotovFireDebuff_C", "BP_FireEffectController_C", "ProjStickyGrenade_C",
            "ProjC4_C", "Bluezonebomb_EffectActor_C",
        ),
        "throwable",
    ),
}
_DAMAGE_CATEGORY: dict[str, str] = {
    **dict.fromkeys(("Damage_Punch", "Damage_Melee", "Damage_MeleeThrow"), "melee"),
    **dict.fromkeys(
        (
            "Damage_Explosion_Grenade", "Damage_Molotov", "Damage_Explosion_StickyBomb",
            "Damage_Explosion_C4", "Damage_BlueZoneGrenade",
        ),
        "throwable",
    ),
    **dict.fromkeys(
        ("Damage_VehicleHit", "Damage_VehicleCrashHit", "Damage_Explosion_Vehicle"), "vehicle"
    ),
}
WEAPON_CATEGORIES = (
    "AR", "DMR", "SR", "SMG", "shotgun", "LMG", "pistol", "melee", "throwable", "vehicle", "other",
)


def weapon_category(causer: str | None, damage_category: str | None) -> str:
    """One of WEAPON_CATEGORIES for a damageCauserName and damageTypeCategory."""
    found = _CAUSER_CATEGORY.get(causer or "") or _DAMAGE_CATEGORY.get(damage_category or "")
    return found or "other"


def weapon_of(info: Event | None) -> str:
    """The weapon category of a damage info, or of an event that keeps those keys flat."""
    if not info:
        return "other"
    return weapon_category(info.damageCauserName, info.damageTypeCategory)


def identity(players: dict[str, Player], account_id: str,
             character: Event | None) -> tuple[str | None, int | None]:
    """Name and team of a player: the roster's, else those of a character seen in the events."""
    player = players.get(account_id)
    if player is not None:
        return player.name, player.team_id
    if character:
        return character.name, character.teamId
    return None, None
