"""Knocks, what became of each, and how well each player finishes what they knock.

One `knocks` row per LogPlayerMakeGroggy. The outcome arrives later in the pass: the kill (either
layout; the old one carries dBNOId too and its finisher is `killer`) or the revive with the same
dBNOId closes the knock. Knocks without an id (-1: blue-zone knocks) close on the victim's next
death or revive instead. Whatever is still open at the end closes as `match_end`.

Teammate proximity is computed at the knock event itself from a latest-position map per team,
fed by LogPlayerPosition and by the characters of the events seen here (the knock's own two
first), so it costs O(team size) per knock and nothing per event beyond a dict store. A dead
player's samples (see `collectors.lives`) never put them back in the map.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import datetime
from itertools import pairwise
from math import hypot, sqrt
from typing import Any

from pewproc.telemetry.collectors.common import (
    Body,
    Sample,
    actor,
    body,
    identity,
    in_game,
    is_enemy,
    is_teammate,
)
from pewproc.telemetry.collectors.kills import _role, character_cells, damage_cells
from pewproc.telemetry.model import (
    Collector,
    Event,
    Handler,
    MatchContext,
    Row,
    is_bot,
    parse_time,
    phase,
    table,
)

# A teammate's latest known position counts at a knock when it is at most this old. Positions are
# sampled every ~10 s, so 12 s holds exactly one sample per live teammate despite jitter.
PROXIMITY_WINDOW_S = 12.0
PROXIMITY_RADII_M = (50, 100, 200)
# Knock distance buckets for player_finishing: <10, 10-50, 50-100, 100-200, >=200 m.
DISTANCE_EDGES_M = (10, 50, 100, 200)

OUTCOMES = (
    "finished_by_knocker",  # the knocker's own kill (PUBG credits bleed-outs to the knocker)
    "finished_by_teammate",  # a teammate of the knocker finished
    "finished_by_other",  # someone of another team finished (a killsteal, seen from the knocker)
    "revived",
    "died_other",  # death with no finisher: blue zone, fall, self
    "match_end",  # still knocked when the match ended (or the file ends)
)


def _proximity_columns(role: str) -> tuple[tuple[str, str], ...]:
    return (
        (f"{role}_mates_known", "int8"),
        (f"{role}_mate_nearest_m", "float8"),
        (f"{role}_mate_mean_m", "float8"),
        (f"{role}_mate_std_m", "float8"),
        *((f"{role}_mates_within_{r}m", "int8") for r in PROXIMITY_RADII_M),
    )


KNOCKS = table(
    "knocks",
    ("knocked_at", "timestamptz"),
    ("phase", "float8"),
    ("attack_id", "int8"),
    ("dbno_id", "int8"),
    *_role("attacker", damage=False),
    ("attacker_is_bot", "bool"),
    *_role("victim", damage=False),
    ("victim_is_bot", "bool"),
    ("damage_reason", "text"),
    ("damage_category", "text"),
    ("weapon", "text"),
    ("distance_m", "float8"),
    ("through_wall", "bool"),
    ("is_attacker_in_vehicle", "bool"),
    ("is_team_knock", "bool"),
    ("outcome", "text"),
    ("outcome_at", "timestamptz"),
    ("time_to_outcome_s", "float8"),
    ("ended_by_account_id", "text"),  # the finisher, or the reviver of a revived knock
    ("ended_by_team_id", "int8"),
    *_proximity_columns("attacker"),
    *_proximity_columns("victim"),
)

_BUCKET_NAMES = (
    f"knocks_lt_{DISTANCE_EDGES_M[0]}m",
    *(f"knocks_{lo}_{hi}m" for lo, hi in pairwise(DISTANCE_EDGES_M)),
    f"knocks_ge_{DISTANCE_EDGES_M[-1]}m",
)

PLAYER_FINISHING = table(
    "player_finishing",
    ("account_id", "text"),
    ("player_name", "text"),
    ("team_id", "int8"),
    ("knocks", "int8"),
    ("finished_by_self", "int8"),
    ("finished_by_team", "int8"),
    ("finished_by_other", "int8"),
    ("revived", "int8"),
    ("died_other", "int8"),
    ("unresolved", "int8"),
    ("instant_kills", "int8"),
    ("conversion_rate", "float8"),
    ("mean_time_to_finish_s", "float8"),
    *((n, "int8") for n in _BUCKET_NAMES),
)
_CONVERSIONS = ("finished_by_knocker", "finished_by_teammate")
# player_finishing's counter columns for each knock outcome.
_OUTCOME_COUNTER = {
    "finished_by_knocker": "finished_by_self",
    "finished_by_teammate": "finished_by_team",
    "finished_by_other": "finished_by_other",
    "revived": "revived",
    "died_other": "died_other",
    "match_end": "unresolved",
}


_NO_MATES = (0, None, None, None, *(0 for _ in PROXIMITY_RADII_M))


def proximity_cells(distances: list[float]) -> tuple[Any, ...]:
    """Known count, nearest, mean, population std and counts within each radius."""
    if not distances:
        return _NO_MATES
    n = len(distances)
    mean = sum(distances) / n
    var = sum([(d - mean) ** 2 for d in distances]) / n
    ordered = sorted(distances)  # the counts within each radius by bisection, not a pass each
    return (
        n,
        ordered[0],
        mean,
        sqrt(var),
        *[bisect_right(ordered, r) for r in PROXIMITY_RADII_M],
    )


def distance_bucket(distance_m: float | None) -> int | None:
    """Index into the knock distance buckets; None when PUBG gave no distance."""
    if distance_m is None:
        return None
    for i, edge in enumerate(DISTANCE_EDGES_M):
        if distance_m < edge:
            return i
    return len(DISTANCE_EDGES_M)


class _Knock:
    """A knock waiting for its outcome; its row is written in `finish`."""

    __slots__ = ("at", "attacker", "cells", "counts", "dbno_id", "distance_m", "ended_by",
                 "outcome", "outcome_at", "proximity", "victim")

    def __init__(self, event: Event, cells: tuple[Any, ...], proximity: tuple[Any, ...],
                 at: datetime | None, attacker: tuple[str, int | None] | None,
                 victim: tuple[str, int | None] | None, distance_m: float | None) -> None:
        self.cells = cells
        self.proximity = proximity
        self.at = at
        self.attacker = attacker
        self.victim = victim
        self.distance_m = distance_m
        dbno_id = event.dBNOId
        self.dbno_id = dbno_id if dbno_id != -1 else None
        # whether it counts for the knocker's player_finishing row
        self.counts = bool(
            attacker and victim and not is_bot(attacker[0]) and is_enemy(attacker, victim)
            and in_game(event)
        )
        self.outcome: str | None = None
        self.outcome_at: datetime | None = None
        self.ended_by: tuple[str, int | None] | None = None

    def elapsed_s(self) -> float | None:
        if self.outcome_at is None or self.at is None:
            return None
        return (self.outcome_at - self.at).total_seconds()


class Knocks(Collector):
    tables = (KNOCKS, PLAYER_FINISHING)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__(ctx)
        self.knocks: list[_Knock] = []
        self.open_by_id: dict[int, _Knock] = {}
        self.open_by_victim: dict[str, _Knock] = {}
        # team -> account -> (x m, y m, `_D`): the latest place each live player was seen
        self.seen: dict[Any, dict[str, tuple[float, float, str | None]]] = {}
        self.instant_kills: Counter[str] = Counter()
        self.characters: dict[str, Event] = {}  # name and team of players not on the roster
        self.ended_at: datetime | None = None

    def handlers(self) -> dict[str, Handler]:
        return {
            "LogPlayerPosition": self.on_position,
            "LogPlayerMakeGroggy": self.on_knock,
            "LogPlayerRevive": self.on_revive,
            "LogPlayerKillV2": self.on_kill_v2,
            "LogPlayerKill": self.on_kill_v1,
            "LogMatchEnd": self.on_end,
        }

    def on_position(self, sample: Sample) -> None:
        # `_see` of the decoded character: once per sample.
        event, _, _, who = sample
        if who is None or who[0] in self.ctx.dead:  # a corpse's sample (collectors.lives)
            return
        account_id, team_id, x, y, _ = who
        if x is not None and y is not None:
            team = self.seen.get(team_id)
            if team is None:
                team = self.seen[team_id] = {}
            team[account_id] = (x, y, event._D)

    def _see(self, who: Body | None, when: str | None) -> None:
        """Note where a player was (`on_position` does the same inline)."""
        if who is not None:
            account_id, team_id, x, y, _ = who
            if x is not None and y is not None:
                team = self.seen.get(team_id)
                if team is None:
                    team = self.seen[team_id] = {}
                team[account_id] = (x, y, when)

    def _mates(self, me: Body | None, at: datetime | None) -> tuple[Any, ...]:
        """Proximity cells of a player's live teammates seen within the window around `at`."""
        me_id, team_id, here_x, here_y, _ = me or (None, None, None, None, None)
        if team_id is None or here_x is None or here_y is None or at is None:
            return proximity_cells([])
        distances = []
        for account_id, (x, y, when) in (self.seen.get(team_id) or {}).items():
            if account_id == me_id:
                continue
            seen_at = parse_time(when)
            if seen_at is not None and abs((at - seen_at).total_seconds()) <= PROXIMITY_WINDOW_S:
                distances.append(hypot(x - here_x, y - here_y))
        return proximity_cells(distances)

    def on_knock(self, event: Event) -> None:
        attacker_c, victim_c = event.attacker, event.victim
        attacker_b, victim_b = body(attacker_c), body(victim_c)
        attacker = attacker_b[:2] if attacker_b else None  # actor(), from the Body
        victim = victim_b[:2] if victim_b else None
        at, when = parse_time(event._D), event._D
        info = damage_cells(event)  # the damage keys are flat in a knock
        cells = (
            self.ctx.match_id,
            at,
            phase(event),
            event.attackId,
            event.dBNOId,
            *character_cells(attacker_c),
            is_bot(attacker[0]) if attacker else None,
            *character_cells(victim_c),
            is_bot(victim[0]) if victim else None,
            *info,
            event.isAttackerInVehicle,
            bool(attacker and victim and is_teammate(attacker, victim)),
        )
        # Both sides where the knock itself puts them first: for a team knock, each is the
        # other's teammate, and the event's places are newer than any sample.
        self._see(victim_b, when)
        self._see(attacker_b, when)
        proximity = (*self._mates(attacker_b, at), *self._mates(victim_b, at))
        knock = _Knock(event, cells, proximity, at, attacker, victim, info[3])
        self.knocks.append(knock)
        if knock.dbno_id is not None:
            self.open_by_id[knock.dbno_id] = knock
        if victim:
            self.open_by_victim[victim[0]] = knock
        if attacker:
            self.characters.setdefault(attacker[0], attacker_c)  # type: ignore[arg-type]

    def _close(self, event: Event, victim: tuple[str, int | None] | None) -> _Knock | None:
        """The open knock an event ends, by dBNOId, else the victim's open knock; forgotten."""
        knock = self.open_by_id.get(event.dBNOId)  # type: ignore[arg-type]
        if knock is None and victim:
            knock = self.open_by_victim.get(victim[0])
        if knock is None:
            return None
        if knock.dbno_id is not None:
            del self.open_by_id[knock.dbno_id]
        if knock.victim and self.open_by_victim.get(knock.victim[0]) is knock:
            del self.open_by_victim[knock.victim[0]]
        return knock

    def on_revive(self, event: Event) -> None:
        victim_c, reviver_c = event.victim, event.reviver
        knock = self._close(event, actor(victim_c))
        if knock is not None:
            knock.outcome, knock.outcome_at = "revived", parse_time(event._D)
            knock.ended_by = actor(reviver_c)
        for character in (victim_c, reviver_c):
            self._see(body(character), event._D)

    def on_kill_v2(self, event: Event) -> None:
        self._on_kill(event, event.finisher or event.killer)

    def on_kill_v1(self, event: Event) -> None:
        self._on_kill(event, event.killer)

    def _on_kill(self, event: Event, finisher_c: Event | None) -> None:
        victim = actor(event.victim)
        finisher = actor(finisher_c)
        knock = self._close(event, victim)
        if knock is not None:
            knock.outcome = _kill_outcome(knock, finisher)
            knock.outcome_at = parse_time(event._D)
            knock.ended_by = finisher
        elif (
            event.dBNOId in (-1, None)
            and finisher and victim and is_enemy(finisher, victim)
            and not is_bot(finisher[0]) and in_game(event)
        ):
            self.instant_kills[finisher[0]] += 1
            self.characters.setdefault(finisher[0], finisher_c)  # type: ignore[arg-type]
        if victim:
            (self.seen.get(victim[1]) or {}).pop(victim[0], None)  # the dead have no position
        self._see(body(finisher_c), event._D)

    def on_end(self, event: Event) -> None:
        self.ended_at = parse_time(event._D)

    def finish(self) -> dict[str, list[Row]]:
        rows = []
        for knock in self.knocks:
            if knock.outcome is None:
                knock.outcome, knock.outcome_at = "match_end", self.ended_at
            rows.append(
                (*knock.cells, knock.outcome, knock.outcome_at, knock.elapsed_s(),
                 *(knock.ended_by or (None, None)), *knock.proximity)
            )
        return {KNOCKS.name: rows, PLAYER_FINISHING.name: self._finishing_rows()}

    def _finishing_rows(self) -> list[Row]:
        # Plain dicts read with .get(name, 0): a Counter's missing keys cost a Python call each,
        # and most players miss most of the 13 counters.
        per_player: dict[str, dict[str, int]] = {}
        finish_times: dict[str, list[float]] = {}
        for knock in self.knocks:
            if not knock.counts:
                continue
            knocker = knock.attacker[0]  # type: ignore[index]
            counts = per_player.setdefault(knocker, {})
            counts["knocks"] = counts.get("knocks", 0) + 1
            outcome = _OUTCOME_COUNTER[knock.outcome]  # type: ignore[index]
            counts[outcome] = counts.get(outcome, 0) + 1
            bucket = distance_bucket(knock.distance_m)
            if bucket is not None:
                counts[_BUCKET_NAMES[bucket]] = counts.get(_BUCKET_NAMES[bucket], 0) + 1
            elapsed = knock.elapsed_s()
            if knock.outcome in _CONVERSIONS and elapsed is not None:
                finish_times.setdefault(knocker, []).append(elapsed)
        humans = {a for a in self.ctx.players if not is_bot(a)}
        rows = []
        for account_id in sorted(humans | per_player.keys() | self.instant_kills.keys()):
            count = per_player.get(account_id, {}).get
            knocks = count("knocks", 0)
            converted = count("finished_by_self", 0) + count("finished_by_team", 0)
            times = finish_times.get(account_id)
            rows.append(
                (
                    self.ctx.match_id,
                    account_id,
                    *identity(self.ctx.players, account_id, self.characters.get(account_id)),
                    knocks,
                    count("finished_by_self", 0),
                    count("finished_by_team", 0),
                    count("finished_by_other", 0),
                    count("revived", 0),
                    count("died_other", 0),
                    count("unresolved", 0),
                    self.instant_kills.get(account_id, 0),
                    converted / knocks if knocks else None,
                    sum(times) / len(times) if times else None,
                    *[count(n, 0) for n in _BUCKET_NAMES],
                )
            )
        return rows


def _kill_outcome(knock: _Knock, finisher: tuple[str, int | None] | None) -> str:
    """Who finished a knock, relative to the knocker (PUBG's own finisher attribution)."""
    if finisher is None or (knock.victim and finisher[0] == knock.victim[0]):
        return "died_other"
    knocker = knock.attacker
    if knocker and finisher[0] == knocker[0]:
        return "finished_by_knocker"
    if knocker and finisher[1] is not None and finisher[1] == knocker[1]:
        return "finished_by_teammate"
    return "finished_by_other"
