"""Typed decoding: the events as the collectors read them, and nothing more.

`orjson.loads` builds a dict for every object of a match, most of them for keys and event types no
collector reads. msgspec decodes into Structs instead: one per event type, told apart by `_T`.
The types some collector reads share one Struct of every key read anywhere; every other type is a
Struct of `common` alone (the game-event count reads it on every event), so its characters and
items are skipped without being built. Structs without cyclic-GC tracking are also cheaper to free
than dicts. Collectors read attributes, which the general path's `Fields` offers too.

That is an optimisation, never a change of results, so the shapes are strict where a difference
could hide:
- every key a collector reads is declared, with the JSON types real files carry. A value of
  another type (a string for a number, a boolean for a health, an integer beyond 64 bits, which
  orjson reads as a float) fails the decode, and the file goes the general way;
- an object the collectors test for truth (a character, a location, `common`, the game state)
  declares a required key: a Struct is always true, an empty dict is not, so an empty one must not
  decode here;
- a key that is missing reads as None, as `dict.get` read it: no collector tells the two apart;
- rosters and results, whose entries come in two shapes, stay plain dicts (see `Entry`), read
  through `general.as_fields`.

Event types come and go with game versions. A type this module does not know fails the decode as
an unknown tag; the decoder then learns every type the file names, as a Struct of `common` alone,
and decodes again, so a new type costs one scan of the file, once per process.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import threading
from typing import Annotated, Any, ClassVar

import msgspec
import orjson

from pewproc.telemetry.general import Fields
from pewproc.text import printable

log = logging.getLogger(__name__)

# orjson's integers are 64 bits; past them it gives a float. msgspec's bounds stop at int64.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Num = Int | float  # an integer stays an int, as orjson keeps it


class Shape(msgspec.Struct, gc=False):
    """Decoded objects hold no reference cycles: the cyclic GC need not track them."""


class Location(Shape):
    x: Num
    y: Num
    z: Num


class Character(Shape):
    accountId: str
    name: str | None = None
    teamId: Int | None = None
    health: Num | None = None
    location: Location | None = None
    zone: list[str] | None = None
    ranking: Int | None = None


class Common(Shape):
    isGame: Num


class Item(Shape):
    itemId: str | None = None
    subCategory: str | None = None


class DamageInfo(Shape):  # read alike whether empty or not
    damageReason: str | None = None
    damageTypeCategory: str | None = None
    damageCauserName: str | None = None
    distance: Num | None = None
    isThroughPenetrableWall: bool | None = None


class Point(Shape):  # read alike whether empty or not
    x: Num | None = None
    y: Num | None = None


class GameState(Shape):
    safetyZoneRadius: Num | None  # required: `if state:` decides whether the circles change
    safetyZonePosition: Point | None = None
    poisonGasWarningPosition: Point | None = None
    poisonGasWarningRadius: Num | None = None
    numStartTeams: Int | None = None


# Rosters and results: entries are plain characters (older files) or wrappers of one (newer
# ones), two shapes no one Struct declares. They stay dicts that keep every key, so an entry is
# empty here only where it was; the two levels the collectors read (an entry's keys, its
# character's) are typed as strictly as the rest, and below them nothing is read.
Scalar = Int | float | str | bool | None
Inner = dict[str, Scalar | list[Any] | dict[str, Any]]
Entry = dict[str, Scalar | list[Any] | Inner]


class Event(Shape, tag_field="_T"):
    """An event of a type no collector reads: only its phase is."""

    _T: ClassVar[str]
    common: Common | None = None


class ReadEvent(Event):
    """An event of a type some collector reads: every key read of any type, absent ones None."""

    _D: str | None = None
    MatchId: str | None = None
    character: Character | None = None
    attacker: Character | None = None
    victim: Character | None = None
    killer: Character | None = None
    finisher: Character | None = None
    dBNOMaker: Character | None = None
    reviver: Character | None = None
    assistant: Character | None = None
    damage: Num | None = None
    distance: Num | None = None
    elapsedTime: Num | None = None
    attackId: Int | None = None
    dBNOId: Int | None = None
    teamSize: Int | None = None
    damageTypeCategory: str | None = None
    damageReason: str | None = None
    damageCauserName: str | None = None
    victimWeapon: str | None = None
    mapName: str | None = None
    isThroughPenetrableWall: bool | None = None
    isAttackerInVehicle: bool | None = None
    isSuicide: bool | None = None
    isCustomGame: bool | None = None
    item: Item | None = None
    weapon: Item | None = None
    dBNODamageInfo: DamageInfo | None = None
    finishDamageInfo: DamageInfo | None = None
    killerDamageInfo: DamageInfo | None = None
    assists_AccountId: list[str | None] | None = None
    teamKillers_AccountId: list[str | None] | None = None
    gameState: GameState | None = None
    characters: list[Entry] | None = None
    gameResultOnFinished: dict[str, Scalar | list[Inner] | Inner] | None = None


# The four types that are most of what is read get Structs of only the keys their handlers read:
# smaller objects, quicker to build and to free (a test holds each to what the collectors read of
# it); the others share ReadEvent.
class PositionEvent(Event):  # LogPlayerPosition, a fifth of a match
    _D: str | None = None
    character: Character | None = None
    elapsedTime: Num | None = None


class DamageEvent(Event):  # LogPlayerTakeDamage
    _D: str | None = None
    attacker: Character | None = None
    victim: Character | None = None
    damage: Num | None = None
    attackId: Int | None = None
    damageTypeCategory: str | None = None
    damageReason: str | None = None
    damageCauserName: str | None = None
    isThroughPenetrableWall: bool | None = None


class AttackEvent(Event):  # LogPlayerAttack
    attacker: Character | None = None
    weapon: Item | None = None


class ItemUseEvent(Event):  # LogItemUse
    character: Character | None = None
    item: Item | None = None


# Every type a collector handles, and its Struct (a test holds this to the collectors' handlers).
READ_SHAPES: dict[str, type[Event]] = {
    "LogPlayerPosition": PositionEvent,
    "LogPlayerTakeDamage": DamageEvent,
    "LogPlayerAttack": AttackEvent,
    "LogItemUse": ItemUseEvent,
    **dict.fromkeys(
        ("LogGameStatePeriodic", "LogMatchDefinition", "LogMatchEnd", "LogMatchStart",
         "LogParachuteLanding", "LogPlayerCreate", "LogPlayerKill", "LogPlayerKillV2",
         "LogPlayerMakeGroggy", "LogPlayerRevive", "LogPlayerUseThrowable"),
        ReadEvent,
    ),
}
# The rest of PUBG's documented types (pubg-assets' telemetry-events), and the spellings real
# files use where they differ from the documentation.
UNREAD_TYPES = (
    "LogArmorDestroy", "LogBlackZoneEnded", "LogCarePackageLand", "LogCarePackageSpawn",
    "LogCharacterCarry", "LogEmPickupLiftOff", "LogHeal", "LogItemAttach", "LogItemDetach",
    "LogItemDrop", "LogItemEquip", "LogItemPickup", "LogItemPickupFromCarepackage",
    "LogItemPickupFromCustomPackage", "LogItemPickupFromLootbox", "LogItemPickupFromLootBox",
    "LogItemPickupFromVehicleTrunk", "LogItemPutToVehicleTrunk", "LogItemUnequip",
    "LogObjectDestroy", "LogObjectInteraction", "LogPhaseChange", "LogPlayerDestroyBreachableWall",
    "LogPlayerDestroyProp", "LogPlayerLogin", "LogPlayerLogout", "LogPlayerRedeploy",
    "LogPlayerRedeployBRStart", "LogPlayerUseFlareGun", "LogRedZoneEnded", "LogSwimEnd",
    "LogSwimStart", "LogVaultStart", "LogVehicleDamage", "LogVehicleDestroy", "LogVehicleLeave",
    "LogVehicleRide", "LogWeaponFireCount", "LogWheelDestroy",
)
# Types learned from files, at most this many per process: a file naming thousands of made-up
# types goes the general way instead of growing the decoder without end.
MAX_LEARNED_TYPES = 200
_TAG = re.compile(rb'"_T"\s*:\s*"([^"\\]{1,200})"')


def _event_class(tag: str, base: type[Event]) -> type[Event]:
    return type(tag, (base,), {"_T": tag}, tag=tag)


class _Decoder:
    """The decoder of every known type; learns the types a file brings (see the module's doc)."""

    def __init__(self) -> None:
        self.classes = [_event_class(t, shape) for t, shape in READ_SHAPES.items()]
        self.classes += [_event_class(t, Event) for t in UNREAD_TYPES]
        self.known = {*READ_SHAPES, *UNREAD_TYPES}
        self.learned = 0
        self.lock = threading.Lock()
        self._build()

    def _build(self) -> None:
        union = functools.reduce(operator.or_, self.classes)
        self.decoder = msgspec.json.Decoder(list[union])  # type: ignore[valid-type]
        self.single = msgspec.json.Decoder(union)

    def decode(self, data: bytes) -> list[Event] | None:
        try:
            return self.decoder.decode(data)
        except msgspec.ValidationError as exc:
            if "._T`" not in str(exc) or not self._learn(data):
                return None  # a misfit, not an unknown type
        except (msgspec.DecodeError, RecursionError):
            return None
        try:
            return self.decoder.decode(data)
        except (msgspec.DecodeError, RecursionError):
            return None

    def _learn(self, data: bytes) -> bool:
        """Whether the file names types not known before, now learned."""
        try:
            tags = {m.decode() for m in set(_TAG.findall(data))}
        except UnicodeDecodeError:
            return False
        with self.lock:
            new = tags - self.known
            if not new or self.learned + len(new) > MAX_LEARNED_TYPES:
                return False
            self.classes += [_event_class(t, Event) for t in sorted(new)]
            self.known |= new
            self.learned += len(new)
            self._build()
        log.info("event types not known before, now decoded typed (unread): %s",
                 ", ".join(printable(t) for t in sorted(new)))
        return True


    def decode_each(self, data: bytes) -> list[Event | Fields] | None:
        """Each event typed where it fits its shape, else as `Fields` of its general parse."""
        try:
            raws = _RAW_EVENTS.decode(data)
        except (msgspec.DecodeError, RecursionError):  # msgspec nests less deep than orjson
            return None
        single = self.single.decode
        events: list[Event | Fields] = []
        append = events.append
        for raw in raws:
            try:
                append(single(raw))
                continue
            except (msgspec.DecodeError, RecursionError):
                pass
            try:
                event = orjson.loads(memoryview(raw))
            except orjson.JSONDecodeError:
                return None
            if event.__class__ is not dict:
                return None
            append(Fields(event))
        return events


_RAW_EVENTS = msgspec.json.Decoder(list[msgspec.Raw])
_decoder = _Decoder()


def decode_typed(data: bytes) -> list[Event] | None:
    """The events as the collectors read them; None when the file does not fit the shapes (or
    is no JSON array of objects at all)."""
    return _decoder.decode(data)


def decode_each(data: bytes) -> list[Event | Fields] | None:
    """For a file that does not fit as a whole: every event that fits its shape decoded typed,
    the others parsed the general way and read through `Fields`. Reading an event either way
    gives the same (the shapes promise it event by event), so the rows are those of the general
    path, at nearly the typed path's cost. None when the file is no JSON array of objects: the
    general path then reads it, and names what is wrong."""
    return _decoder.decode_each(data)
