"""The typed decoding reads what the general one reads, or declines: never something else."""

from __future__ import annotations

import copy
import logging
import uuid
from typing import Any, ClassVar

import msgspec
import orjson
import pytest

from pewproc.telemetry import typed as typed_module
from pewproc.telemetry.collectors import COLLECTORS
from pewproc.telemetry.extract import extract
from pewproc.telemetry.general import Fields
from pewproc.telemetry.model import MatchContext
from pewproc.telemetry.reader import GENERAL, TYPED, parse_events
from pewproc.telemetry.synth import generate_match
from pewproc.telemetry.typed import (
    MAX_LEARNED_TYPES,
    READ_SHAPES,
    UNREAD_TYPES,
    Character,
    Common,
    DamageInfo,
    Event,
    GameState,
    Item,
    Location,
    Point,
    decode_typed,
)
from tests.telemetry.events import Decoding, char, damage, event, kill_v2, position, run

A, B = char("account.a", 1, 10, 20), char("account.b", 2, 30, 40)


# The Struct each object below an event is decoded into.
SHAPES: dict[str, type[msgspec.Struct]] = {
    **dict.fromkeys(("character", "attacker", "victim", "killer", "finisher", "dBNOMaker",
                     "reviver", "assistant"), Character),
    "item": Item, "weapon": Item, "common": Common, "gameState": GameState,
    **dict.fromkeys(("dBNODamageInfo", "finishDamageInfo", "killerDamageInfo"), DamageInfo),
    "location": Location, **dict.fromkeys(("safetyZonePosition", "poisonGasWarningPosition"),
                                          Point),
}


def projected(full: dict[str, Any], shape: type[msgspec.Struct]) -> dict[str, Any]:
    """What the typed path keeps of an object: its shape's keys, null or absent alike left out
    (both read as None), and of the objects below them their shapes' keys (rosters and results
    whole)."""
    out = {}
    for key, value in full.items():
        if key not in shape.__struct_fields__ or value is None:
            continue
        below = SHAPES.get(key)
        out[key] = projected(value, below) if below and isinstance(value, dict) else value
    return out


def plain(decoded: msgspec.Struct) -> dict[str, Any]:
    """A decoded object's keys that hold something, objects below it made plain too."""
    out = {}
    for key in decoded.__struct_fields__:
        value = getattr(decoded, key)
        if value is not None:
            out[key] = plain(value) if isinstance(value, msgspec.Struct) else value
    return out


def test_generated_matches_decode_typed_to_the_general_events_less_unread_keys() -> None:
    events = generate_match(3, players=16, team_size=4, duration_s=400)
    typed, path = parse_events(orjson.dumps(events), 10**6)
    assert path == TYPED
    assert len(typed) == len(events)
    for got, full in zip(typed, events, strict=True):
        assert full["_T"] == got._T
        shape = READ_SHAPES.get(full["_T"], Event)
        assert type(got).__bases__ == (shape,)
        expected = projected(full, shape)
        assert plain(got) == expected
        sorted_json = orjson.OPT_SORT_KEYS
        assert orjson.dumps(plain(got), option=sorted_json) == orjson.dumps(  # 1 is not 1.0
            expected, option=sorted_json)


def test_every_type_a_collector_reads_is_decoded_in_full() -> None:
    ctx = MatchContext("m")
    handled = {t for cls in COLLECTORS for t in cls(ctx).handlers()}
    assert handled == set(READ_SHAPES)
    assert not handled & set(UNREAD_TYPES)


class _Recorder(Fields):
    """General-path events that note every key a collector reads of them, by event type."""

    __slots__ = ()
    reads: ClassVar[set[tuple[Any, str]]] = set()

    def __getattr__(self, key: str) -> Any:
        _Recorder.reads.add((self.get("_T"), key))
        return super().__getattr__(key)


@pytest.mark.parametrize("kill_layout", ["v2", "v1"])
def test_every_key_a_collector_reads_of_an_event_is_declared_for_its_type(
        kill_layout: str) -> None:
    _Recorder.reads = set()
    for seed in (1, 2, 3):
        events = generate_match(seed, players=24, team_size=2, duration_s=900, bots=4,
                                kill_layout=kill_layout)
        extract([_Recorder(e) for e in events], MatchContext("m"))
    read_of: dict[str, set[str]] = {}
    for event_type, key in _Recorder.reads:
        read_of.setdefault(event_type, set()).add(key)
    assert set(read_of) >= set(READ_SHAPES) - {"LogPlayerKill" if kill_layout == "v2"
                                               else "LogPlayerKillV2"}
    for event_type, keys in read_of.items():
        shape = READ_SHAPES.get(event_type, Event)
        assert keys - {"_T"} <= set(shape.__struct_fields__), event_type


def test_a_type_nobody_knew_is_learned_and_decoded_typed(
        caplog: pytest.LogCaptureFixture) -> None:
    new = f"LogNew{uuid.uuid4().hex}"
    events = [event(new, 1, foo={"bar": [1, 2]}), event("LogPlayerLogin", 2)]
    with caplog.at_level(logging.INFO, logger="pewproc.telemetry.typed"):
        got, taken = parse_events(orjson.dumps(events), 10)
    assert taken == TYPED
    assert new in caplog.text
    assert [e._T for e in got] == [new, "LogPlayerLogin"]
    assert plain(got[0]) == {"common": {"isGame": 1.0}}


def test_a_file_of_too_many_new_types_goes_the_general_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typed_module._decoder, "learned", MAX_LEARNED_TYPES)
    events = [event(f"LogNew{uuid.uuid4().hex}", 1)]
    got, taken = parse_events(orjson.dumps(events), 10)
    assert taken == GENERAL and got == events


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
        [position(1, A, None)],  # null where a value may be null
        [_with(HIT, ("attacker",), None)],
        [kill_v2(3, B, killer=A)],
        [{"_T": "LogMatchDefinition", "MatchId": "match.bro.official.x.steam.squad.na.1"}],
    ],
)
def test_what_fits_decodes_typed(events: list[dict[str, Any]]) -> None:
    got, taken = parse_events(orjson.dumps(events), 10)
    assert taken == TYPED
    assert [e._T for e in got] == [e["_T"] for e in events]


def test_rosters_and_results_keep_every_key_of_their_entries() -> None:
    events = generate_match(5, players=8, team_size=2, duration_s=200)
    typed, taken = parse_events(orjson.dumps(events), 10**6)
    assert taken == TYPED
    for got, full in zip(typed, events, strict=True):
        if full["_T"] in ("LogMatchStart", "LogMatchEnd"):
            assert got.characters == full["characters"]
        if full["_T"] == "LogMatchEnd":
            assert got.gameResultOnFinished == full["gameResultOnFinished"]


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
    assert got.characters == [entry]


def test_a_file_that_does_not_fit_still_decodes_every_event_that_does_typed() -> None:
    events = generate_match(4, players=16, team_size=4, duration_s=400)
    odd = next(i for i, e in enumerate(events) if e["_T"] == "LogPlayerTakeDamage")
    events[odd]["attackId"] = 2**63  # orjson reads it; past int64, it fits no shape
    got, taken = parse_events(orjson.dumps(events), 10**6)
    assert taken == GENERAL
    general = [i for i, e in enumerate(got) if isinstance(e, Fields)]
    assert general == [odd] and got[odd] == events[odd]
    assert all(isinstance(e, msgspec.Struct) for i, e in enumerate(got) if i != odd)
    run(events, path=TYPED)  # the same rows as every event read the general way
    assert Decoding.taken == GENERAL


@pytest.mark.parametrize("data", [b'[{"_T": "LogHeal"}, 42]', b'[{"_T": "LogHeal"}, {"a": ]',
                                  b'{"_T": "LogHeal"}'])
def test_what_is_no_array_of_objects_is_left_to_the_general_path_to_name(data: bytes) -> None:
    assert decode_typed(data) is None
    assert typed_module.decode_each(data) is None


def test_nesting_deeper_than_msgspec_goes_to_orjson_which_reads_it() -> None:
    deep = b"[" * 1010 + b"]" * 1010
    data = b'[{"_T": "LogHeal", "common": {}}, {"_T": "LogHeal", "x": ' + deep + b"}]"
    events, taken = parse_events(data, 10)
    assert taken == GENERAL and [e._T for e in events] == ["LogHeal", "LogHeal"]
    assert isinstance(events[1], Fields)
