"""The typed decoding reads what the general one reads, or declines: never something else."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from pewproc.telemetry.reader import GENERAL, TYPED, parse_events
from pewproc.telemetry.synth import generate_match
from pewproc.telemetry.typed import (
    Character,
    DamageInfo,
    Event,
    GameState,
    Item,
    Point,
    decode_typed,
)
from tests.telemetry.events import char, damage, event, kill_v2, position

A, B = char("account.a", 1, 10, 20), char("account.b", 2, 30, 40)


INFOS = ("dBNODamageInfo", "finishDamageInfo", "killerDamageInfo")
ROLES = ("character", "attacker", "victim", "killer", "finisher", "dBNOMaker", "reviver",
         "assistant")


def projected(full: dict[str, Any]) -> dict[str, Any]:
    """What the typed path keeps of an event: the declared keys, and of the objects below them
    their declared keys (rosters and results whole)."""
    out = {k: v for k, v in full.items() if k in Event.__annotations__}
    for key, shape in (*((r, Character) for r in ROLES), ("item", Item), ("weapon", Item),
                       *((k, DamageInfo) for k in INFOS), ("gameState", GameState)):
        if out.get(key):
            out[key] = {k: v for k, v in out[key].items() if k in shape.__annotations__}
    if out.get("gameState"):
        for key in ("safetyZonePosition", "poisonGasWarningPosition"):
            if out["gameState"].get(key):
                out["gameState"][key] = {k: v for k, v in out["gameState"][key].items()
                                         if k in Point.__annotations__}
    return out


def test_generated_matches_decode_typed_to_the_general_events_less_unread_keys() -> None:
    events = generate_match(3, players=16, team_size=4, duration_s=400)
    typed, path = parse_events(orjson.dumps(events), 10**6)
    assert path == TYPED
    assert len(typed) == len(events)
    for got, full in zip(typed, events, strict=True):
        expected = projected(full)
        assert {k: v for k, v in got.items() if k in expected} == expected
        assert all(type(got[k]) is type(v) for k, v in expected.items())


def _with(event_: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event_)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return out


HIT = damage(5, A, B, 12.5)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("damage",), "12.5"),  # a string for a number
        (("victim", "health"), True),  # a boolean for a number
        (("attackId",), 2**63),  # beyond 64 bits signed: orjson reads 2**64 and up as floats
        (("common", "isGame"), None),  # a null where every real file has a number
        (("common",), {}),  # an object tested for truth that would read empty
        (("victim",), {"teamId": 2, "unread": 1}),  # a character without an account
        (("victim", "location"), {"x": 1.0, "y": 2.0}),  # a location without z
        (("victim", "zone"), "Pochinki"),  # a string for a list
    ],
)
def test_shapes_that_do_not_fit_go_the_general_way(path: tuple[str, ...], value: Any) -> None:
    odd = _with(HIT, path, value)
    data = orjson.dumps([odd])
    assert decode_typed(data) is None
    events, taken = parse_events(data, 10)
    assert taken == GENERAL and events == [orjson.loads(data)[0]]


@pytest.mark.parametrize(
    "events",
    [
        [event("LogSomethingNew", 1, foo={"bar": [1, 2]})],  # unknown types pass through
        [position(1, A, None)],  # null where a value may be null
        [_with(HIT, ("attacker",), None)],
        [kill_v2(3, B, killer=A)],
        [{"_T": "LogMatchDefinition", "MatchId": "match.bro.official.x.steam.squad.na.1"}],
    ],
)
def test_what_fits_decodes_typed(events: list[dict[str, Any]]) -> None:
    got, taken = parse_events(orjson.dumps(events), 10)
    assert taken == TYPED
    assert [e.get("_T") for e in got] == [e.get("_T") for e in events]


def test_rosters_and_results_keep_every_key_of_their_entries() -> None:
    events = generate_match(5, players=8, team_size=2, duration_s=200)
    typed, taken = parse_events(orjson.dumps(events), 10**6)
    assert taken == TYPED
    for got, full in zip(typed, events, strict=True):
        if full["_T"] in ("LogMatchStart", "LogMatchEnd"):
            assert got["characters"] == full["characters"]
        if full["_T"] == "LogMatchEnd":
            assert got["gameResultOnFinished"] == full["gameResultOnFinished"]


@pytest.mark.parametrize(
    ("entry", "fits"),
    [
        ({"character": {"accountId": "account.a", "teamId": 2**63}}, False),  # past int64
        ({"accountId": "account.a", "ranking": "1"}, True),  # read as they come: a str stays
        ({"unread": 1}, True),  # not empty: every key is kept
        (None, False),
    ],
)
def test_roster_entries_read_as_the_general_path_reads_them(entry: Any, fits: bool) -> None:
    start = event("LogMatchStart", 0, characters=[entry])
    data = orjson.dumps([start])
    (got,), taken = parse_events(data, 10)
    assert (taken == TYPED) is fits
    assert got == orjson.loads(data)[0]
