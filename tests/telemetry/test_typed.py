"""The typed decoding reads what the general one reads, or declines: never something else."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from pewproc.telemetry.reader import GENERAL, TYPED, parse_events
from pewproc.telemetry.synth import generate_match
from pewproc.telemetry.typed import RAW_KEYS_OF, Character, Event, Item, decode_typed
from tests.telemetry.events import char, damage, event, kill_v2, position

A, B = char("account.a", 1, 10, 20), char("account.b", 2, 30, 40)


ROLES = ("character", "attacker", "victim", "killer", "finisher", "dBNOMaker", "reviver",
         "assistant")


def projected(full: dict[str, Any]) -> dict[str, Any]:
    """What the typed path keeps of an event: the declared keys, characters and items cut
    down to theirs; raw structures only in the event types that read them."""
    raw = {k for keys in RAW_KEYS_OF.values() for k in keys} - set(RAW_KEYS_OF.get(full["_T"], ()))
    out = {k: v for k, v in full.items() if k in Event.__annotations__ and k not in raw}
    for key, shape in (*((r, Character) for r in ROLES), ("item", Item), ("weapon", Item)):
        if out.get(key):
            out[key] = {k: v for k, v in out[key].items() if k in shape.__annotations__}
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


def test_nested_structures_read_raw_are_the_general_values() -> None:
    kill = kill_v2(3, B, killer=A, knocker=A, assists=("account.c",))
    (got,), taken = parse_events(orjson.dumps([kill]), 10)
    assert taken == TYPED
    for key in RAW_KEYS_OF["LogPlayerKillV2"]:
        assert got[key] == kill[key] and type(got[key]) is type(kill[key])
