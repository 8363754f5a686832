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
4. Winner: a team wiped out in the fight (its last living member, as of the end of the match,
   died between the fight's first and last interaction, of any cause) lost. If exactly one team
   was left standing while others were wiped out, it won. Otherwise, per team still standing,
   net = enemy kills made in the fight minus own members killed in it; the unique highest net,
   when above zero, won and every other team lost; else there is no winner and the teams still
   standing drew.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import chain
from math import hypot
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from pewproc.telemetry.collectors.common import Body, Hit, body, identity, is_enemy
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
_TEAMS = itemgetter(Interaction._fields.index("attacker_team"),
                    Interaction._fields.index("victim_team"))
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


def cluster(interactions: list[Interaction]) -> list[list[Interaction]]:
    """Interactions grouped by the sweep (step 2): groups by start, each in time order.

    This loop runs once per interaction over a few fights each, so an interaction is unpacked
    once (a NamedTuple's attributes cost more) and a team's live list is rebuilt only when one
    of its fights has gone stale.
    """
    fights: list[_Fight] = []
    live: dict[int, list[_Fight]] = {}  # team -> fights it took part in, pruned once stale
    for item in sorted(interactions, key=_by_time):
        t, _, _, _, _, attacker_team, _, victim_team, (x, y), _ = item
        teams = (attacker_team, victim_team)
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
        nearest.interactions.append(item)
        nearest.last_t = t
        nearest.sum_x += x
        nearest.sum_y += y
        for team in teams:
            if nearest not in live[team]:
                live[team].append(nearest)
    return [f.interactions for f in fights]


def is_fight(interactions: list[Interaction]) -> bool:
    """Step 3: some two teams hit each other both ways."""
    directed = set(map(_TEAMS, interactions))
    return any((b, a) in directed for a, b in directed)


def team_outcomes(interactions: list[Interaction],
                  wiped: frozenset[int] = frozenset()) -> tuple[int | None, dict[int, str]]:
    """Step 4: the winner (or None) and each team's outcome; `wiped` are the teams whose last
    living member died during the fight."""
    net = dict.fromkeys(chain.from_iterable(map(_TEAMS, interactions)), 0)
    for _, _, _, kind, _, attacker_team, _, victim_team, _, _ in interactions:
        if kind == KILL:
            net[attacker_team] += 1
            net[victim_team] -= 1
    standing = [t for t in net if t not in wiped]
    winner = None
    if wiped and len(standing) == 1:
        winner = standing[0]
    elif standing:
        best = max(net[t] for t in standing)
        leaders = [t for t in standing if net[t] == best]
        if best > 0 and len(leaders) == 1:
            winner = leaders[0]
    if winner is None:
        return None, {t: "lost" if t in wiped else "draw" for t in net}
    return winner, {t: "won" if t == winner else "lost" for t in net}


def wipe_times(ctx: MatchContext, interactions: list[Interaction]) -> dict[Any, datetime]:
    """When each team lost its last living member, for teams nobody of which was alive at the
    end of the match; a team's members are the roster's and anyone seen in an interaction or
    a death."""
    members: dict[Any, set[str]] = {}
    for account_id, player in ctx.players.items():
        members.setdefault(player.team_id, set()).add(account_id)
    for account_id, (team_id, _) in ctx.dead.items():
        members.setdefault(team_id, set()).add(account_id)
    for i in interactions:
        members.setdefault(i.attacker_team, set()).add(i.attacker)
        members.setdefault(i.victim_team, set()).add(i.victim)
    wiped = {}
    for team_id, team_members in members.items():
        deaths = [ctx.dead[a][1] for a in team_members if a in ctx.dead]
        if len(deaths) == len(team_members) and None not in deaths:
            wiped[team_id] = max(deaths)  # type: ignore[type-var]
    return wiped


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

    def _note(self, event: Event, phase_: float | None, kind: str, attacker: Body | None,
              victim: Body | None, damage: float) -> None:
        if (phase_ or 0) <= 0:
            return
        if attacker is None or victim is None or not is_enemy(attacker, victim):
            return
        attacker_id, attacker_team, attacker_x, attacker_y, _ = attacker
        victim_id, victim_team, x, y, _ = victim
        if x is None or y is None:
            return
        at = parse_time(event._D)
        if at is None:
            return
        if attacker_x is not None and attacker_y is not None:
            x, y = (x + attacker_x) / 2, (y + attacker_y) / 2
        # tuple.__new__ builds the NamedTuple in C; its own constructor is Python, twice as slow.
        self.interactions.append(tuple.__new__(Interaction, (
            posix_seconds(at), at, phase_, kind, attacker_id, attacker_team, victim_id,
            victim_team, (x, y), damage,
        )))

    def on_damage(self, hit: Hit) -> None:
        # Most hits are bleed-outs (own team), blue zone (no attacker) or team damage: they go on
        # the cheapest test.
        event, at_phase, _, _, attacker, victim = hit
        if attacker is not None and victim is not None and attacker[1] != victim[1]:
            self._note(event, at_phase, HIT, attacker, victim, event.damage or 0.0)

    def on_knock(self, event: Event) -> None:
        self._note(event, phase(event), KNOCK, body(event.attacker),
                   body(event.victim), 0.0)

    def on_kill(self, event: Event) -> None:
        self._note(event, phase(event), KILL, body(event.killer), body(event.victim),
                   0.0)

    def finish(self) -> dict[str, list[Row]]:
        fights: list[Row] = []
        participants: list[Row] = []
        groups = [g for g in cluster(self.interactions) if is_fight(g)]
        wiped_at = wipe_times(self.ctx, self.interactions) if groups else {}
        for fight_id, group in enumerate(groups, start=1):
            start, end = group[0].at, group[-1].at
            wiped = frozenset(t for t in chain.from_iterable(map(_TEAMS, group))
                              if t in wiped_at and start <= wiped_at[t] <= end)
            winner, outcomes = team_outcomes(group, wiped)
            people, kinds = _participants(group)
            n = len(group)
            xs = [i.xy[0] for i in group]
            ys = [i.xy[1] for i in group]
            cx = sum(xs) / n
            cy = sum(ys) / n
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
                    max([hypot(x - cx, y - cy) for x, y in zip(xs, ys, strict=True)]),
                    len(outcomes),
                    len(people),
                    sum(1 for a in people if is_bot(a)),
                    kinds[HIT],
                    kinds[KNOCK],
                    kinds[KILL],
                    float(sum([i.damage for i in group])),
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


_KIND_COLUMN = {HIT: 3, KNOCK: 4, KILL: 5}  # in a participant's figures


def _participants(group: list[Interaction]) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """account -> [team, dealt, taken, hits, knocks, kills, died] within one fight; and how
    many interactions of each kind it had."""
    people: dict[str, list[Any]] = {}
    kinds = dict.fromkeys(_KIND_COLUMN, 0)
    for _, _, _, kind, attacker_id, attacker_team, victim_id, victim_team, _, damage in group:
        attacker = people.get(attacker_id)
        if attacker is None:
            attacker = people[attacker_id] = [attacker_team, 0.0, 0.0, 0, 0, 0, False]
        victim = people.get(victim_id)
        if victim is None:
            victim = people[victim_id] = [victim_team, 0.0, 0.0, 0, 0, 0, False]
        attacker[1] += damage
        victim[2] += damage
        attacker[_KIND_COLUMN[kind]] += 1
        kinds[kind] += 1
        if kind == KILL:
            victim[6] = True
    return people, kinds
