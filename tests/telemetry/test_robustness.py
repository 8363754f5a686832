"""Schema drift: nulls and missing keys anywhere, unknown types and ids, odd timestamps."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pewproc.telemetry.collectors.knocks import OUTCOMES
from pewproc.telemetry.synth import generate_match
from tests.telemetry import test_knocks, test_players
from tests.telemetry.events import (
    assert_pg_types,
    char,
    damage,
    event,
    game_state,
    knock,
    position,
    rows,
    run,
)

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding


def paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path inside nested dicts (lists are left alone)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))


def mutated(event_: dict, path: tuple, *, drop: bool) -> dict:
    """A copy of an event with the value at `path` set to null, or its key removed."""
    out = copy.deepcopy(event_)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = None
    return out


def small_match() -> list[dict]:
    return test_players.match() + test_knocks.outcomes_match()


def test_null_or_missing_anywhere_never_fails() -> None:
    """Each key of each event, at any depth, nulled and then dropped: extraction still runs and
    every value still fits its column."""
    events = small_match()
    tried = 0
    for i, original in enumerate(events):
        for path in paths(original):
            if path == ("_T",):
                continue  # dispatch is extract's business, not the collectors'
            for drop in (False, True):
                variant = [*events[:i], mutated(original, path, drop=drop), *events[i + 1:]]
                assert_pg_types(run(variant))
                tried += 1
    assert tried > 1000


def test_null_objects_read_as_missing_ones() -> None:
    a, b = char("account.a", 1), char("account.b", 2)
    blue = damage(1, None, a, 10, category="Damage_BlueZone")
    dropped = {k: v for k, v in blue.items() if k != "attacker"}
    for variant in (blue, dropped):
        (row,) = rows(run([variant]), "damage_events")
        assert row["attacker_account_id"] is None and row["victim_account_id"] == "account.a"
    k = knock(2, a, b, 1)
    k["attacker"]["location"] = None
    (row,) = rows(run([k]), "knocks")
    assert row["attacker_x_m"] is None and row["attacker_mates_known"] == 0


def test_unknown_types_and_ids_pass_through() -> None:
    a, b = char("account.a", 1), char("account.b", 2)
    events = [
        event("LogSomethingNew", 0, foo={"bar": None}),
        {"_T": "LogNoCommonNoTime"},
        {"no": "type"},
        damage(1, a, b, 12, causer="WeapFromTheFuture_C", category="Damage_Unheard_Of"),
        damage(2, b, a, 3),
    ]
    extraction = run(events)
    (weapon,) = [r for r in rows(extraction, "weapon_stats") if r["account_id"] == "account.a"]
    assert (weapon["weapon_category"], weapon["damage"]) == ("other", 12.0)
    assert len(rows(extraction, "damage_events")) == 2
    assert len(rows(extraction, "fights")) == 1


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2025-07-12T17:00:01.123Z", datetime(2025, 7, 12, 17, 0, 1, 123000, tzinfo=UTC)),
        ("2025-07-12T17:00:01.1234567Z", datetime(2025, 7, 12, 17, 0, 1, 123456, tzinfo=UTC)),
        ("2025-07-12T17:00:01.12345+00:00", datetime(2025, 7, 12, 17, 0, 1, 123450, tzinfo=UTC)),
        ("not a time", None),
        (None, None),
    ],
)
def test_timestamps_of_every_shape(stamp: str | None, expected: datetime | None) -> None:
    a, b = char("account.a", 1), char("account.b", 2)
    hit, back = damage(1, a, b, 10), damage(1, b, a, 10)
    hit["_D"] = stamp
    (row, _) = rows(run([hit, back]), "damage_events")
    assert row["damaged_at"] == expected
    assert len(rows(run([hit, back]), "fights")) == (1 if expected else 0)


def test_odd_circles_and_positions() -> None:
    a = char("account.a", 1)
    broken_state = game_state(1, (0, 0, 100))
    broken_state["gameState"]["safetyZonePosition"] = None
    events = [
        event("LogGameStatePeriodic", 0, gameState=None),
        broken_state,
        position(2, a, None),  # PUBG gave no elapsed time
        position(3, {"accountId": "account.a"}, 3),  # no location at all
        game_state(4, (0, 0, 100)),
        position(5, a, 5),
    ]
    got = rows(run(events), "circle_positions")
    assert [r["is_outside"] for r in got] == [None, None, False]
    assert_pg_types(run(events))


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_both_kill_layouts_on_a_whole_match(layout: str) -> None:
    events = generate_match(7, players=24, team_size=2, kill_layout=layout, duration_s=600)
    extraction = run(events)
    assert_pg_types(extraction)
    kinds = {"v1": "LogPlayerKill", "v2": "LogPlayerKillV2"}
    assert len(rows(extraction, "kills")) == sum(1 for e in events if e["_T"] == kinds[layout])
    knocks = rows(extraction, "knocks")
    assert knocks and all(k["outcome"] in OUTCOMES for k in knocks)
    # The generator ends every knock in a finish or a revive before the match ends.
    assert all(k["outcome"] != "match_end" for k in knocks)
