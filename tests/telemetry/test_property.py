"""The one-pass extraction agrees with a plain reference written here, on generated matches.

The reference reads the events the slow, obvious way (a list comprehension per question), so a
disagreement points at the collectors' bookkeeping, not at a shared misreading.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pewproc.telemetry.reader import TYPED
from pewproc.telemetry.synth import generate_match
from tests.telemetry.events import Decoding, rows, run

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

Event = dict[str, Any]


def account(character: Event | None) -> str | None:
    return (character or {}).get("accountId") or None


def team(character: Event | None) -> int | None:
    return (character or {}).get("teamId")


def counted(event: Event, attacker: Event | None, victim: Event | None) -> str | None:
    """The human attacker of a hit on an enemy in the match proper, else None."""
    who = account(attacker)
    if not who or who.startswith("ai.") or event["common"]["isGame"] <= 0:
        return None
    if who == account(victim) or team(attacker) == team(victim):
        return None
    return who


def living_samples(events: list[Event]) -> list[Event]:
    """Position samples of players not dead then: after a player's latest earlier death, some
    sample of theirs up to this one shows health above 0."""
    deaths = [(i, account(e.get("victim"))) for i, e in enumerate(events)
              if e["_T"] in ("LogPlayerKillV2", "LogPlayerKill")]
    out = []
    for i, e in enumerate(events):
        if e["_T"] != "LogPlayerPosition":
            continue
        who = account(e.get("character"))
        died = [j for j, victim in deaths if victim == who and j < i]
        if died and not any(events[k]["_T"] == "LogPlayerPosition"
                            and account(events[k].get("character")) == who
                            and events[k]["character"]["health"] > 0
                            for k in range(max(died), i + 1)):
            continue
        out.append(e)
    return out


def landings(events: list[Event]) -> int:
    """Landings, less PUBG's echoes: a player's earlier landing repeated at health 0."""
    seen: set[tuple[str | None, Any]] = set()
    count = 0
    for e in events:
        if e["_T"] == "LogParachuteLanding":
            key = (account(e.get("character")), e.get("distance"))
            if key in seen and e["character"]["health"] == 0:
                continue
            seen.add(key)
            count += 1
    return count


def reference(events: list[Event]) -> dict[str, Counter]:
    kills: Counter[str] = Counter()
    assists: Counter[str] = Counter()
    knocks: Counter[str] = Counter()
    damage: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for e in events:
        if e["_T"] in ("LogPlayerKillV2", "LogPlayerKill"):
            who = counted(e, e.get("killer"), e.get("victim"))
            if who:
                kills[who] += 1
            if e["_T"] == "LogPlayerKill":
                helpers = [account(e.get("assistant"))]
            else:
                helpers = e.get("assists_AccountId") or []
            for helper in helpers:
                if (helper and not helper.startswith("ai.") and e["common"]["isGame"] > 0
                        and helper not in (account(e.get("killer")), account(e.get("victim")))):
                    assists[helper] += 1
        elif e["_T"] == "LogPlayerMakeGroggy":
            who = counted(e, e.get("attacker"), e.get("victim"))
            if who:
                knocks[who] += 1
        elif e["_T"] == "LogPlayerTakeDamage":
            who = counted(e, e.get("attacker"), e.get("victim"))
            if who:
                damage[who] += e["damage"]
                hits[who] += 1
    return {"kills": kills, "knocks": knocks, "damage": damage, "hits": hits,
            "assists": assists}


def nonzero(counter: Counter) -> dict[str, float]:
    return {k: v for k, v in counter.items() if v}


# decode_path is set once per test, and is the same for every example: no reset needed.
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 100_000),
    layout=st.sampled_from(["v2", "v1"]),
    team_size=st.sampled_from([1, 2, 4]),
    bots=st.sampled_from([0, 6]),
)
def test_extraction_agrees_with_the_reference(decode_path: str, seed: int, layout: str,
                                              team_size: int, bots: int) -> None:
    events = generate_match(seed, players=24, team_size=team_size, kill_layout=layout,
                            duration_s=600, bots=bots)
    expected = reference(events)
    assert expected["kills"] and expected["hits"]  # a match with something to count
    extraction = run(events)
    if decode_path == TYPED:  # generated matches fit the typed shapes, as real ones do
        assert Decoding.taken == TYPED
    stats = rows(extraction, "player_match_stats")
    assert not any(r["account_id"].startswith("ai.") for r in stats)
    assert nonzero(Counter({r["account_id"]: r["kills"] for r in stats})) == nonzero(
        expected["kills"])
    assert nonzero(Counter({r["account_id"]: r["knocks"] for r in stats})) == nonzero(
        expected["knocks"])
    assert nonzero(Counter({r["account_id"]: r["assists"] for r in stats})) == nonzero(
        expected["assists"])
    dealt = {r["account_id"]: r["damage_dealt"] for r in stats if r["damage_dealt"]}
    assert dealt.keys() == nonzero(expected["damage"]).keys()
    for who, amount in dealt.items():
        assert amount == pytest.approx(expected["damage"][who])

    weapons: dict[str, Counter] = {"kills": Counter(), "knocks": Counter(), "hits": Counter()}
    for r in rows(extraction, "weapon_stats"):
        for figure in weapons:
            weapons[figure][r["account_id"]] += r[figure]
    for figure, by_player in weapons.items():
        assert nonzero(by_player) == nonzero(expected[figure]), figure

    finishing = {r["account_id"]: r["knocks"] for r in rows(extraction, "player_finishing")}
    assert nonzero(Counter(finishing)) == nonzero(expected["knocks"])

    humans = {r["account_id"] for r in stats}
    touching = [e for e in events if e["_T"] == "LogPlayerTakeDamage"
                and (account(e.get("attacker")) in humans or account(e.get("victim")) in humans)]
    assert len(rows(extraction, "damage_events")) == len(touching)
    knocks = rows(extraction, "knocks")
    assert len(knocks) == sum(1 for e in events if e["_T"] == "LogPlayerMakeGroggy")
    revived = {e["dBNOId"] for e in events if e["_T"] == "LogPlayerRevive"}
    assert {k["dbno_id"] for k in knocks if k["outcome"] == "revived"} == revived
    assert len(rows(extraction, "landings")) == landings(events)
    circle = [e for e in living_samples(events) if account(e.get("character")) in humans
              and e["common"]["isGame"] > 0]
    assert len(rows(extraction, "circle_positions")) == len(circle)
