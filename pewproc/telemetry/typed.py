"""Typed decoding: the events as the collectors read them, and nothing more.

`orjson.loads` builds a dict for every object of a match, about half of them for keys and event
types no collector reads. msgspec decodes into declared shapes instead, and skips what is not
declared without building it. The shapes here are TypedDicts, so every event is still a plain
dict and the collectors run unchanged on either path: the typed path is the general one with the
unread keys left out.

That is an optimisation, never a change of results, so the shapes are strict where a difference
could hide:
- every key a collector reads is declared, with the JSON types real files carry. A value of
  another type (a string for a number, a boolean for a health, an integer beyond 64 bits, which
  orjson reads as a float) fails the decode, and the file goes the general way;
- an object the collectors test for truth (a character, a location, `common`) declares a
  required key, so it is never empty here where it was not there;
- rosters and results, whose entries come in two shapes, keep every key (see `Entry`).
A null and a missing key stay what they were: TypedDicts keep a key's absence.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, Required, TypedDict

import msgspec

# orjson's integers are 64 bits; past them it gives a float. msgspec's bounds stop at int64.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Num = Int | float  # an integer stays an int, as orjson keeps it


class Location(TypedDict):
    x: Num
    y: Num
    z: Num


class Character(TypedDict, total=False):
    accountId: Required[str]
    name: str | None
    teamId: Int | None
    health: Num | None
    location: Location | None
    zone: list[str] | None
    ranking: Int | None


class Common(TypedDict):
    isGame: Num


class Item(TypedDict, total=False):
    itemId: str | None
    subCategory: str | None


class DamageInfo(TypedDict, total=False):  # read alike whether empty or not
    damageReason: str | None
    damageTypeCategory: str | None
    damageCauserName: str | None
    distance: Num | None
    isThroughPenetrableWall: bool | None


class Point(TypedDict, total=False):  # read alike whether empty or not
    x: Num | None
    y: Num | None


class GameState(TypedDict, total=False):
    safetyZoneRadius: Required[Num | None]  # `if state:` decides whether the circles change
    safetyZonePosition: Point | None
    poisonGasWarningPosition: Point | None
    poisonGasWarningRadius: Num | None
    numStartTeams: Int | None


_FIELDS: dict[str, Any] = {
    "_T": str,  # required, unlike the others
    "_D": str | None,
    "common": Common | None,
    "MatchId": str | None,
    **dict.fromkeys(
        ("character", "attacker", "victim", "killer", "finisher", "dBNOMaker", "reviver",
         "assistant"),
        Character | None,
    ),
    **dict.fromkeys(("damage", "distance", "elapsedTime"), Num | None),
    **dict.fromkeys(("attackId", "dBNOId", "teamSize"), Int | None),
    **dict.fromkeys(
        ("damageTypeCategory", "damageReason", "damageCauserName", "victimWeapon", "mapName"),
        str | None,
    ),
    **dict.fromkeys(
        ("isThroughPenetrableWall", "isAttackerInVehicle", "isSuicide", "isCustomGame"),
        bool | None,
    ),
    **dict.fromkeys(("item", "weapon"), Item | None),
    **dict.fromkeys(("dBNODamageInfo", "finishDamageInfo", "killerDamageInfo"),
                    DamageInfo | None),
    **dict.fromkeys(("assists_AccountId", "teamKillers_AccountId"), list[str | None] | None),
    "gameState": GameState | None,
}
# Rosters and results: entries are plain characters (older files) or wrappers of one (newer
# ones), two shapes no one TypedDict declares. They keep every key, so an entry is empty here only
# where it was; the two levels the collectors read (an entry's keys, its character's) are typed
# as strictly as the rest, and below them nothing is read.
Scalar = Int | float | str | bool | None
Inner = dict[str, Scalar | list[Any] | dict[str, Any]]
Entry = dict[str, Scalar | list[Any] | Inner]
_FIELDS["characters"] = list[Entry] | None
_FIELDS["gameResultOnFinished"] = dict[str, Scalar | list[Inner] | Inner] | None

_SHAPES: dict[str, Any] = {
    **{k: NotRequired[v] for k, v in _FIELDS.items()},
    "_T": Required[_FIELDS["_T"]],
}
Event = TypedDict("Event", _SHAPES)  # type: ignore[misc]

_decoder = msgspec.json.Decoder(list[Event])


def decode_typed(data: bytes) -> list[dict[str, Any]] | None:
    """The events as the collectors read them; None when the file does not fit the shapes (or
    is no JSON array of objects at all): the general path then reads it, and reports why."""
    try:
        events: list[dict[str, Any]] = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return events
