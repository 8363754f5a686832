"""Fights: engagements between teams, clustered in time and space.

The algorithm (thresholds below, nowhere else):

1. Interactions. Every hit (LogPlayerTakeDamage), knock (LogPlayerMakeGroggy) and kill
   (LogPlayerKillV2's `killer`, LogPlayerKill's `killer`) in the match proper (isGame > 0) whose
   attacker and victim are players of two different known teams. Its place is the midpoint of
   attacker and victim (the victim alone when the attacker has no position); without any position
   it is dropped. Team damage, team knocks and teamkills are never interactions: they neither make
   nor extend a fight nor count in its totals. Bots are players here: they shoot back, so a fight
   with a bot team is a fight; `fight_participants.is_bot` tells them apart.
2. Sweep. Interactions are sorted by time and taken in order. An interaction joins a live fight
   that one of its teams takes part in (so a third party joins the fight it walks into), whose
   latest interaction is at most FIGHT_GAP_S earlier and whose centre (the mean place of its
   interactions so far) is at most FIGHT_LINK_M away; of several, the one with the nearest
   centre. With none, it starts a fight. Fights never merge: merging two live fights that share
   a team let a busy area chain every fight of a match into one, and the centre rule keeps a
   fight from drifting across the map. Live fights are indexed by team and pruned once stale,
   so each interaction looks only at its two teams' few live fights: linear after the sort.
3. A cluster is a fight only if some two teams in it both hit each other (damage, knock or kill,
   in both directions). So a single decisive kill is a fight when the victim's team fought back
   within the cluster's window; a one-sided ambush or a stray hit is not.
4. Winner: per team, net = enemy kills made in the fight minus own members killed in it. The team
   with the unique highest net, when that is above zero, won; every other team lost. Otherwise
   there is no winner and every team drew.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from math import hypot
from operator import attrgetter
from typing import Any, NamedTuple

from pewproc.telemetry.collectors.common import body, identity, is_enemy
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

FIGHT_GAP_S = 30.0  # an interaction joins a fight whose latest interaction is at most this old
FIGHT_LINK_M = 200.0  # ... and whose centre is at most this far away

FIGHTS = table(
    "fights",
    ("fight_id", "int8"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("duration_s", "float8"),
    ("phase", "float8"),
    ("centre_x_m", "float8"),
    ("centre_y_m", "float8"),
    ("radius_m", "float8"),
    ("team_count", "int8"),
    ("participant_count", "int8"),
    ("bot_count", "int8"),
    ("hits", "int8"),
    ("knocks", "int8"),
    ("kills", "int8"),
    ("damage", "float8"),
    ("winner_team_id", "int8"),
)
FIGHT_PARTICIPANTS = table(
    "fight_participants",
    ("fight_id", "int8"),
    ("account_id", "text"),
    ("player_name", "text"),
    ("team_id", "int8"),
    ("is_bot", "bool"),
    ("damage_dealt", "float8"),
    ("damage_taken", "float8"),
    ("hits", "int8"),
    ("knocks", "int8"),
    ("kills", "int8"),
    ("died", "bool"),
    ("team_outcome", "text"),
)

HIT, KNOCK, KILL = "hit", "knock", "kill"


class Interaction(NamedTuple):
    t: float  # POSIX seconds, for the sweep
    at: datetime
    phase: float | None
    kind: str
    attacker: str
    attacker_team: int
    victim: str
    victim_team: int
    xy: tuple[float, float]
    damage: float


_by_time = attrgetter("t")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def posix_seconds(at: datetime) -> float:
    """`at.timestamp()`, to the bit: for an aware time CPython computes exactly this
    subtraction, which costs half as much from Python."""
    return (at - _EPOCH).total_seconds() if at.tzinfo is not None else at.timestamp()


class _Fight:
    __slots__ = ("interactions", "last_t", "sum_x", "sum_y")

    def __init__(self) -> None:
        self.interactions: list[Interaction] = []  # in time order, as the sweep adds them
        self.last_t = 0.0
        self.sum_x = self.sum_y = 0.0  # of the interactions' places: the centre is their mean

    def distance_m(self, xy: tuple[float, float]) -> float:
        """How far a place is from the fight's centre so far."""
        n = len(self.interactions)
        return hypot(self.sum_x / n - xy[0], self.sum_y / n - xy[1])

    def add(self, item: Interaction) -> None:
        self.interactions.append(item)
        self.last_t = item.t
        self.sum_x += item.xy[0]
        self.sum_y += item.xy[1]


def cluster(interactions: list[Interaction]) -> list[list[Interaction]]:
    """Interactions grouped by the sweep (step 2): groups by start, each in time order.

    A team's live list is rebuilt only when one of its fights has gone stale, and distances are
    `_Fight.distance_m` inlined: this loop runs once per interaction, over a few fights each.
    """
    fights: list[_Fight] = []
    live: dict[int, list[_Fight]] = {}  # team -> fights it took part in, pruned once stale
    for item in sorted(interactions, key=_by_time):
        t, x, y = item.t, item.xy[0], item.xy[1]
        teams = (item.attacker_team, item.victim_team)
        nearest: _Fight | None = None
        nearest_m = FIGHT_LINK_M
        for team in teams:
            fresh = live.get(team)
            if fresh is None:
                fresh = live[team] = []
            for fight in fresh:
                if t - fight.last_t > FIGHT_GAP_S:
                    fresh = live[team] = [f for f in fresh if t - f.last_t <= FIGHT_GAP_S]
                    break
            for fight in fresh:
                n = len(fight.interactions)
                distance = hypot(fight.sum_x / n - x, fight.sum_y / n - y)
                if distance <= nearest_m:
                    nearest, nearest_m = fight, distance
        if nearest is None:
            nearest = _Fight()
            fights.append(nearest)
        nearest.add(item)
        for team in teams:
            if nearest not in live[team]:
                live[team].append(nearest)
    return [f.interactions for f in fights]


def is_fight(interactions: list[Interaction]) -> bool:
    """Step 3: some two teams hit each other both ways."""
    directed = {(i.attacker_team, i.victim_team) for i in interactions}
    return any((b, a) in directed for a, b in directed)


def team_outcomes(interactions: list[Interaction]) -> tuple[int | None, dict[int, str]]:
    """Step 4: the winner (or None) and each team's outcome."""
    net = dict.fromkeys((t for i in interactions for t in (i.attacker_team, i.victim_team)), 0)
    for i in interactions:
        if i.kind == KILL:
            net[i.attacker_team] += 1
            net[i.victim_team] -= 1
    best = max(net.values())
    leaders = [t for t, v in net.items() if v == best]
    if best <= 0 or len(leaders) > 1:
        return None, dict.fromkeys(net, "draw")
    return leaders[0], {t: "won" if t == leaders[0] else "lost" for t in net}


class Fights(Collector):
    tables = (FIGHTS, FIGHT_PARTICIPANTS)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__(ctx)
        self.interactions: list[Interaction] = []

    def handlers(self) -> dict[str, Handler]:
        return {
            "LogPlayerTakeDamage": self.on_damage,
            "LogPlayerMakeGroggy": self.on_knock,
            "LogPlayerKillV2": self.on_kill,
            "LogPlayerKill": self.on_kill,
        }

    def _note(self, event: Event, kind: str, attacker_c: Event | None, victim_c: Event | None,
              damage: float) -> None:
        # Cheapest test first: most of what reaches here is kept, but the phase costs least.
        phase_ = phase(event)
        if (phase_ or 0) <= 0:
            return
        attacker, victim = body(attacker_c), body(victim_c)
        if attacker is None or victim is None or not is_enemy(attacker, victim):
            return
        attacker_id, attacker_team, attacker_x, attacker_y, _ = attacker
        victim_id, victim_team, x, y, _ = victim
        if x is None or y is None:
            return
        at = parse_time(event.get("_D"))
        if at is None:
            return
        if attacker_x is not None and attacker_y is not None:
            x, y = (x + attacker_x) / 2, (y + attacker_y) / 2
        # tuple.__new__ builds the NamedTuple in C; its own constructor is Python, twice as slow.
        self.interactions.append(tuple.__new__(Interaction, (
            posix_seconds(at), at, phase_, kind, attacker_id, attacker_team, victim_id,
            victim_team, (x, y), damage,
        )))

    def on_damage(self, event: Event) -> None:
        # Most hits are bleed-outs (own team), blue zone (no attacker) or team damage: they go on
        # the cheapest test, before anything is decoded.
        attacker_c, victim_c = event.get("attacker"), event.get("victim")
        if attacker_c and victim_c and attacker_c.get("teamId") != victim_c.get("teamId"):
            self._note(event, HIT, attacker_c, victim_c, event.get("damage") or 0.0)

    def on_knock(self, event: Event) -> None:
        self._note(event, KNOCK, event.get("attacker"), event.get("victim"), 0.0)

    def on_kill(self, event: Event) -> None:
        self._note(event, KILL, event.get("killer"), event.get("victim"), 0.0)

    def finish(self) -> dict[str, list[Row]]:
        fights: list[Row] = []
        participants: list[Row] = []
        groups = [g for g in cluster(self.interactions) if is_fight(g)]
        for fight_id, group in enumerate(groups, start=1):
            winner, outcomes = team_outcomes(group)
            people = _participants(group)
            n = len(group)
            cx = sum(i.xy[0] for i in group) / n
            cy = sum(i.xy[1] for i in group) / n
            kinds = Counter(i.kind for i in group)
            fights.append(
                (
                    self.ctx.match_id,
                    fight_id,
                    group[0].at,
                    group[-1].at,
                    group[-1].t - group[0].t,
                    group[0].phase,
                    cx,
                    cy,
                    max(hypot(i.xy[0] - cx, i.xy[1] - cy) for i in group),
                    len(outcomes),
                    len(people),
                    sum(1 for a in people if is_bot(a)),
                    kinds[HIT],
                    kinds[KNOCK],
                    kinds[KILL],
                    float(sum(i.damage for i in group)),
                    winner,
                )
            )
            for account_id, (team_id, *figures) in sorted(people.items()):
                participants.append(
                    (
                        self.ctx.match_id,
                        fight_id,
                        account_id,
                        identity(self.ctx.players, account_id, None)[0],
                        team_id,
                        is_bot(account_id),
                        float(figures[0]),
                        float(figures[1]),
                        *figures[2:],
                        outcomes[team_id],
                    )
                )
        return {FIGHTS.name: fights, FIGHT_PARTICIPANTS.name: participants}


def _participants(group: list[Interaction]) -> dict[str, list[Any]]:
    """account -> [team, dealt, taken, hits, knocks, kills, died] within one fight."""
    people: dict[str, list[Any]] = {}
    column = {HIT: 3, KNOCK: 4, KILL: 5}
    for i in group:
        attacker = people.get(i.attacker)
        if attacker is None:
            attacker = people[i.attacker] = [i.attacker_team, 0.0, 0.0, 0, 0, 0, False]
        victim = people.get(i.victim)
        if victim is None:
            victim = people[i.victim] = [i.victim_team, 0.0, 0.0, 0, 0, 0, False]
        attacker[1] += i.damage
        victim[2] += i.damage
        attacker[column[i.kind]] += 1
        if i.kind == KILL:
            victim[6] = True
    return people
