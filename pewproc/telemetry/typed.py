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
- nested structures read in only a few events of a match (damage infos, rosters, results, the
  game state) are kept as raw JSON and parsed by orjson, exactly as the general path does.
A null and a missing key stay what they were: TypedDicts keep a key's absence.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, Required, TypedDict

import msgspec
import orjson

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


_FIELDS: dict[str, Any] = {
    "_T": str,
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
}
# Kept raw, and parsed by orjson in the event types whose collectors read them: rare, nested
# structures, read as they come. (Elsewhere they stay raw bytes that no collector reads; a
# collector that starts reading one of them in another event type adds that type here.)
RAW_KEYS_OF: dict[str, tuple[str, ...]] = {
    "LogPlayerKillV2": ("dBNODamageInfo", "finishDamageInfo", "killerDamageInfo",
                        "assists_AccountId", "teamKillers_AccountId"),
    "LogGameStatePeriodic": ("gameState",),
    "LogMatchStart": ("characters",),
    "LogMatchEnd": ("characters", "gameResultOnFinished"),
}
RAW_KEYS = frozenset(k for keys in RAW_KEYS_OF.values() for k in keys)

Event = TypedDict(  # type: ignore[misc]
    "Event",
    {**{k: NotRequired[v] for k, v in _FIELDS.items()},
     **{k: NotRequired[msgspec.Raw] for k in RAW_KEYS}},
)

_decoder = msgspec.json.Decoder(list[Event])


def decode_typed(data: bytes) -> list[dict[str, Any]] | None:
    """The events as the collectors read them; None when the file does not fit the shapes (or
    is no JSON array of objects at all): the general path then reads it, and reports why."""
    try:
        events: list[dict[str, Any]] = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    raw_keys_of = RAW_KEYS_OF.get
    loads = orjson.loads
    for event in events:
        keys = raw_keys_of(event.get("_T"))  # type: ignore[arg-type]
        if keys is None:
            continue
        for key in keys:
            if key in event:
                try:
                    event[key] = loads(memoryview(event[key]))
                except orjson.JSONDecodeError:  # valid JSON for msgspec, not for orjson
                    return None
    return events
