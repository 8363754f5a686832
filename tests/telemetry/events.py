"""Builders of hand-made PUBG events for the collector tests.

Positions are given in metres (as the tables speak) and written in centimetres (as PUBG does);
times are seconds after a fixed base. Every builder writes the keys of today's files; tests that
need nulls or missing keys edit the result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pewproc.telemetry.extract import Extraction, extract, output_tables
from pewproc.telemetry.model import MatchContext
from pewproc.telemetry.reader import GENERAL, TYPED, parse_events

Event = dict[str, Any]
BASE = datetime(2025, 7, 12, 17, 0, tzinfo=UTC)
PLANE = 0.10000000149011612


def at(t: float) -> datetime:
    return BASE + timedelta(seconds=t)


def stamp(t: float) -> str:
    return at(t).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def char(account_id: str, team_id: int, x: float = 0.0, y: float = 0.0, z: float = 0.0, *,
         name: str | None = None, health: float = 100.0) -> Event:
    return {
        "name": name or account_id.split(".")[-1],
        "teamId": team_id,
        "health": health,
        "location": {"x": x * 100, "y": y * 100, "z": z * 100},
        "ranking": 0,
        "accountId": account_id,
        "isInBlueZone": False,
        "isInRedZone": False,
        "zone": [],
    }


# PUBG's stand-in attacker of blue-zone knocks.
NOBODY = {"name": "", "teamId": 0, "health": 0, "location": {"x": 0, "y": 0, "z": 0},
          "accountId": ""}


def event(kind: str, t: float, phase: float = 1.0, **body: Any) -> Event:
    return {**body, "common": {"isGame": phase}, "_D": stamp(t), "_T": kind}


def info(causer: str = "WeapHK416_C", category: str = "Damage_Gun", distance_m: float = 10.0,
         reason: str = "TorsoShot") -> Event:
    return {"damageReason": reason, "damageTypeCategory": category, "damageCauserName": causer,
            "additionalInfo": [], "distance": distance_m * 100, "isThroughPenetrableWall": False}


def damage(t: float, attacker: Event | None, victim: Event, amount: float, *,
           causer: str = "WeapHK416_C", category: str = "Damage_Gun", phase: float = 1.0) -> Event:
    return event("LogPlayerTakeDamage", t, phase, attackId=1, attacker=attacker, victim=victim,
                 damageTypeCategory=category, damageReason="TorsoShot", damage=amount,
                 damageCauserName=causer, isThroughPenetrableWall=False)


def knock(t: float, attacker: Event, victim: Event, dbno_id: int, *, distance_m: float = 10.0,
          causer: str = "WeapHK416_C", category: str = "Damage_Gun", phase: float = 1.0) -> Event:
    flat = info(causer, category, distance_m)
    flat.pop("additionalInfo")
    return event("LogPlayerMakeGroggy", t, phase, attackId=2, attacker=attacker, victim=victim,
                 **flat, damageCauserAdditionalInfo=[], isAttackerInVehicle=False,
                 dBNOId=dbno_id, victimWeapon="", victimWeaponAdditionalInfo=[])


def kill_v2(t: float, victim: Event, *, killer: Event | None = None,
            finisher: Event | None = None, knocker: Event | None = None, dbno_id: int = -1,
            causer: str = "WeapHK416_C", category: str = "Damage_Gun",
            assists: tuple[str, ...] = (), phase: float = 1.0) -> Event:
    finisher = finisher if finisher is not None else killer
    return event(
        "LogPlayerKillV2", t, phase, attackId=3, dBNOId=dbno_id, victim=victim,
        victimGameResult={"rank": 0, "teamId": victim["teamId"], "stats": {"killCount": 0},
                          "accountId": victim["accountId"]},
        victimWeapon="", dBNOMaker=knocker, dBNODamageInfo=info() if knocker else None,
        finisher=finisher, finishDamageInfo=info(causer, category) if finisher else None,
        killer=killer, killerDamageInfo=info(causer, category) if killer else None,
        assists_AccountId=list(assists), teamKillers_AccountId=[], isSuicide=False,
    )


def kill_v1(t: float, victim: Event, *, killer: Event | None = None, dbno_id: int = -1,
            causer: str = "WeapHK416_C", category: str = "Damage_Gun",
            assistant: Event | None = None, phase: float = 1.0) -> Event:
    flat = info(causer, category)
    flat.pop("additionalInfo")
    return event("LogPlayerKill", t, phase, attackId=3, killer=killer, victim=victim,
                 assistant=assistant, dBNOId=dbno_id, **flat, damageCauserAdditionalInfo=[],
                 victimGameResult={"rank": 0, "stats": {"killCount": 0}})


def revive(t: float, reviver: Event, victim: Event, dbno_id: int, phase: float = 1.0) -> Event:
    return event("LogPlayerRevive", t, phase, reviver=reviver, victim=victim, dBNOId=dbno_id)


def position(t: float, character: Event, elapsed: float | None, phase: float = 1.0) -> Event:
    return event("LogPlayerPosition", t, phase, character=character, vehicle=None,
                 elapsedTime=elapsed, numAlivePlayers=10)


def game_state(t: float, zone: tuple[float, float, float],
               upcoming: tuple[float, float, float] | None = None, phase: float = 1.0) -> Event:
    """Circles as (x m, y m, radius m); no upcoming circle is PUBG's zeros."""
    nx, ny, nr = upcoming or (0.0, 0.0, 0.0)
    return event("LogGameStatePeriodic", t, phase, gameState={
        "elapsedTime": t,
        "safetyZonePosition": {"x": zone[0] * 100, "y": zone[1] * 100, "z": 0},
        "safetyZoneRadius": zone[2] * 100,
        "poisonGasWarningPosition": {"x": nx * 100, "y": ny * 100, "z": 0},
        "poisonGasWarningRadius": nr * 100,
    })


def item_use(t: float, character: Event, item_id: str, phase: float = 1.0) -> Event:
    return event("LogItemUse", t, phase, character=character,
                 item={"itemId": item_id, "stackCount": 1, "category": "Use", "subCategory": ""})


def throw(t: float, attacker: Event, item_id: str, *, kind: str = "LogPlayerUseThrowable",
          sub_category: str = "Throwable", phase: float = 1.0) -> Event:
    return event(kind, t, phase, attackId=4, fireWeaponStackCount=1, attacker=attacker,
                 attackType="Weapon",
                 weapon={"itemId": item_id, "stackCount": 1, "category": "Weapon",
                         "subCategory": sub_category, "attachedItems": []})


def match_start(t: float, *characters: Event) -> Event:
    """LogMatchStart with today's wrapped characters: the roster."""
    return event("LogMatchStart", t, PLANE, mapName="Baltic_Main", teamSize=4,
                 isCustomGame=False, characters=[{"character": c} for c in characters])


def match_end(t: float, results: tuple[tuple[str, int, int], ...] = ()) -> Event:
    """LogMatchEnd with (account, team, rank) results."""
    return event("LogMatchEnd", t, 4.5, characters=[], gameResultOnFinished={"results": [
        {"rank": rank, "teamId": team, "accountId": account, "stats": {"killCount": 0}}
        for account, team, rank in results
    ]})


DECODE_PATHS = (TYPED, GENERAL)


class Decoding:
    """The decoding path `run` asks for (set per test by the `decode_path` fixture), and the
    path the last typed run took: a file that does not fit the typed shapes goes the general
    way, and tests that promise the typed path check it was taken."""

    asked = GENERAL
    taken: str | None = None


def decode(events: list[Event], path: str) -> tuple[list[Event], str]:
    """The events as the worker would have them from a file holding them, by `path`."""
    return parse_events(orjson.dumps(events), 10**9, typed=path == TYPED)


def run(events: list[Event], tracked: frozenset[str] | None = None, *,
        path: str | None = None) -> Extraction:
    """Extract as the worker does, by the decoding path asked for. On the typed path the
    general one runs too, and the two must agree to the type of every value (repr tells 1
    from 1.0): the typed path is an optimisation, never a change of results."""
    path = path or Decoding.asked
    general = extract(decode(events, GENERAL)[0], MatchContext("m", tracked))
    if path == GENERAL:
        return general
    typed_events, Decoding.taken = decode(events, TYPED)
    typed = extract(typed_events, MatchContext("m", tracked))
    assert repr(typed) == repr(general), "the typed path's rows differ from the general path's"
    return typed


def rows(extraction: Extraction, table_name: str) -> list[dict[str, Any]]:
    """A table's rows as dicts by column name."""
    spec = next(t for t in output_tables() if t.name == table_name)
    return [dict(zip(spec.column_names, row, strict=True)) for row in extraction.tables[table_name]]


def by(rows_: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows_}


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "int4": (int,),
    "int8": (int,),
    "float8": (int, float),
    "bool": (bool,),
    "timestamptz": (datetime,),
}


def assert_pg_types(extraction: Extraction) -> None:
    """Every cell is None or what binary COPY expects for its column's type; ints are not bools."""
    for spec in output_tables():
        for row in extraction.tables[spec.name]:
            assert len(row) == len(spec.columns), spec.name
            for column, value in zip(spec.columns, row, strict=True):
                if value is None:
                    continue
                expected = _PY_TYPES[column.pg_type]
                ok = isinstance(value, expected) and (
                    column.pg_type == "bool" or not isinstance(value, bool)
                )
                assert ok, f"{spec.name}.{column.name} = {value!r} is not {column.pg_type}"
                if column.pg_type == "int4":
                    assert -(2**31) <= value < 2**31, f"{spec.name}.{column.name} = {value}"
