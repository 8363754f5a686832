"""Per human player: one row of combat, items and circle play, and one per weapon category.

Counted in the match proper only (isGame > 0: the plane and after), so lobby scuffles do not
count. Bots get no rows; what humans do to bots counts (PUBG counts bot kills too).

Weapon figures are credited to the attacker's weapon category (`common.weapon_category`): of a
hit or a knock from its damageCauserName, of a kill from `killerDamageInfo` in the current layout
(for bleed-outs PUBG puts the knocking weapon there) and from the flat keys in the old one. Hits
count every damage event on an enemy, also the zero-damage hits on knocked enemies, as PUBG's own
weapon stats do. Both tables are built here because both read every hit once.
"""

from __future__ import annotations

from collections import Counter
from math import hypot
from typing import Any

from pewproc.telemetry.collectors.circle import SafeZone
from pewproc.telemetry.collectors.common import (
    Hit,
    Sample,
    actor,
    identity,
    in_game,
    is_enemy,
    is_teammate,
    old_layout_assists,
    weapon_category,
    weapon_of,
)
from pewproc.telemetry.general import as_fields
from pewproc.telemetry.model import (
    Collector,
    Event,
    Handler,
    MatchContext,
    Row,
    is_bot,
    table,
)

# Throwables thrown for fun, not for the fight: not counted as throwables (unknown ids are).
NOVELTY_THROWABLES = frozenset({"Item_Weapon_Apple_C", "Item_Weapon_Snowball_C"})
SMOKE = "Item_Weapon_SmokeBomb_C"
# A position sample stands for the time until the player's next one (every ~10 s), at most this.
SAMPLE_GAP_CAP_S = 20.0

DAMAGE_SOURCES = ("players", "bluezone", "fall", "self_team", "other")

PLAYER_MATCH_STATS = table(
    "player_match_stats",
    ("account_id", "text"),
    ("player_name", "text"),
    ("team_id", "int8"),
    ("rank", "int8"),
    ("kills", "int8"),
    ("team_kills", "int8"),
    ("knocks", "int8"),
    ("assists", "int8"),
    ("killsteals", "int8"),
    ("damage_dealt", "float8"),
    *((f"damage_taken_{s}", "float8") for s in DAMAGE_SOURCES),
    ("heals", "int8"),
    ("boosts", "int8"),
    ("throwables", "int8"),
    ("smokes", "int8"),
    ("throwable_damage", "float8"),
    ("circle_samples", "int8"),
    ("mean_dist_centre_m", "float8"),
    ("max_dist_centre_m", "float8"),
    ("mean_dist_edge_m", "float8"),
    ("min_dist_edge_m", "float8"),
    ("time_outside_s", "float8"),
)
WEAPON_STATS = table(
    "weapon_stats",
    ("account_id", "text"),
    ("player_name", "text"),
    ("team_id", "int8"),
    ("weapon_category", "text"),
    ("damage", "float8"),
    ("hits", "int8"),
    ("knocks", "int8"),
    ("kills", "int8"),
)
_DAMAGE, _HITS, _KNOCKS, _KILLS = range(4)  # positions in a weapon's figures


def damage_source(category: str | None, attacker_id: str | None, attacker_team: int | None,
                  victim_id: str, victim_team: int | None) -> str:
    """Which of DAMAGE_SOURCES a hit taken by the victim came from (no attacker id: none).
    Bleed-out is "other"."""
    if category == "Damage_BlueZone":
        return "bluezone"
    if category == "Damage_Instant_Fall":
        return "fall"
    if category == "Damage_Groggy" or not attacker_id:
        return "other"
    if attacker_id == victim_id or (attacker_team is not None and attacker_team == victim_team):
        return "self_team"
    return "players"


class _Player:
    __slots__ = ("assists", "boosts", "damage_dealt", "heals", "kills", "killsteals", "knocks",
                 "last_elapsed", "last_outside", "max_centre", "min_edge", "outside_s", "samples",
                 "sum_centre", "sum_edge", "taken", "team_kills", "throwable_damage", "weapons")

    def __init__(self) -> None:
        self.kills = self.team_kills = self.knocks = self.assists = self.killsteals = 0
        self.heals = self.boosts = self.samples = 0
        self.damage_dealt = self.throwable_damage = 0.0
        self.taken = dict.fromkeys(DAMAGE_SOURCES, 0.0)
        self.weapons: dict[str, list[Any]] = {}  # category -> [damage, hits, knocks, kills]
        self.sum_centre = self.sum_edge = self.outside_s = 0.0
        self.max_centre: float | None = None
        self.min_edge: float | None = None
        self.last_elapsed: Any = None  # of the latest sample with an elapsed time, in s
        self.last_outside = False  # ... and whether it was outside the circle

    def weapon(self, category: str) -> list[Any]:
        figures = self.weapons.get(category)
        if figures is None:
            figures = self.weapons[category] = [0.0, 0, 0, 0]
        return figures

    def sample(self, elapsed: Any, to_centre: float, to_edge: float) -> None:
        self.samples += 1
        self.sum_centre += to_centre
        self.sum_edge += to_edge
        if self.max_centre is None or to_centre > self.max_centre:
            self.max_centre = to_centre
        if self.min_edge is None or to_edge < self.min_edge:
            self.min_edge = to_edge
        if (elapsed.__class__ is not float and elapsed.__class__ is not int
                and not isinstance(elapsed, (int, float))):
            return
        if self.last_outside:
            gap = elapsed - self.last_elapsed
            if gap > 0:
                self.outside_s += min(gap, SAMPLE_GAP_CAP_S)
        self.last_elapsed, self.last_outside = elapsed, to_edge < 0

    def died(self) -> None:
        """A death ends a stretch outside: no time is counted across it."""
        self.last_elapsed, self.last_outside = None, False

    def circle_cells(self) -> tuple[Any, ...]:
        if not self.samples:
            return (0, None, None, None, None, None)
        n = self.samples
        return (n, self.sum_centre / n, self.max_centre, self.sum_edge / n, self.min_edge,
                self.outside_s)


class PlayerStats(Collector):
    tables = (PLAYER_MATCH_STATS, WEAPON_STATS)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__(ctx)
        self.players: dict[str, _Player] = {}
        self.characters: dict[str, Event] = {}  # name and team of players not on the roster
        self.zone = SafeZone()
        self.knockers: dict[int, tuple[str, int | None]] = {}  # dBNOId -> knocker (old layout)
        self.thrown: Counter[tuple[str, str]] = Counter()  # LogPlayerUseThrowable
        self.thrown_attacks: Counter[tuple[str, str]] = Counter()  # older files: LogPlayerAttack
        self.ranks: dict[str, int] = {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "LogPlayerTakeDamage": self.on_damage,
            "LogPlayerMakeGroggy": self.on_knock,
            "LogPlayerKillV2": self.on_kill_v2,
            "LogPlayerKill": self.on_kill_v1,
            "LogItemUse": self.on_item_use,
            "LogPlayerUseThrowable": self.on_throwable,
            "LogPlayerAttack": self.on_attack,
            "LogGameStatePeriodic": self.zone.update,
            "LogPlayerPosition": self.on_position,
            "LogMatchEnd": self.on_end,
        }

    def _player(self, account_id: str | None, character: Event | None = None) -> _Player | None:
        """A human's accumulator, created on first sight; None for bots and nobody."""
        player = self.players.get(account_id)  # type: ignore[arg-type]
        if player is not None or not account_id or is_bot(account_id):
            return player
        player = self.players[account_id] = _Player()
        if character is not None:
            self.characters[account_id] = character
        return player

    def on_damage(self, hit: Hit) -> None:
        # Once per hit: the two sides are plain locals (no `actor` pairs), and a known player is
        # found in the dict before `_player` is called.
        event, at_phase, attacker_c, victim_c, attacker, victim = hit
        if at_phase is None or at_phase <= 0 or victim is None:  # in_game
            return
        victim_id, victim_team = victim[0], victim[1]
        attacker_id, attacker_team = (attacker[0], attacker[1]) if attacker else (None, None)
        damage = event.damage or 0.0
        category = event.damageTypeCategory
        players = self.players
        if (  # is_enemy
            attacker_id and attacker_id != victim_id and attacker_team is not None
            and victim_team is not None and attacker_team != victim_team
        ):
            dealer = players.get(attacker_id) or self._player(attacker_id, attacker_c)
            if dealer is not None:
                weapon = weapon_category(event.damageCauserName, category)
                figures = dealer.weapon(weapon)
                figures[_DAMAGE] += damage
                figures[_HITS] += 1
                dealer.damage_dealt += damage
                if weapon == "throwable":
                    dealer.throwable_damage += damage
        taker = players.get(victim_id) or self._player(victim_id, victim_c)
        if taker is not None:
            source = damage_source(category, attacker_id, attacker_team, victim_id, victim_team)
            taker.taken[source] += damage

    def on_knock(self, event: Event) -> None:
        attacker_c = event.attacker
        attacker, victim = actor(attacker_c), actor(event.victim)
        dbno_id = event.dBNOId
        if attacker and dbno_id is not None and dbno_id != -1:
            self.knockers[dbno_id] = attacker
        if attacker and victim and is_enemy(attacker, victim) and in_game(event):
            player = self._player(attacker[0], attacker_c)
            if player is not None:
                player.knocks += 1
                player.weapon(weapon_of(event))[_KNOCKS] += 1

    def on_kill_v2(self, event: Event) -> None:
        self._kill(
            event,
            killer_c=event.killer,
            info=event.killerDamageInfo,
            finisher=actor(event.finisher or event.killer),
            knocker=actor(event.dBNOMaker),
            assists=event.assists_AccountId or (),
        )

    def on_kill_v1(self, event: Event) -> None:
        self._kill(
            event,
            killer_c=event.killer,
            info=event,
            finisher=actor(event.killer),
            knocker=self.knockers.get(event.dBNOId),  # type: ignore[arg-type]
            assists=old_layout_assists(event),
        )

    def _kill(self, event: Event, *, killer_c: Event | None, info: Event | None,
              finisher: tuple[str, int | None] | None, knocker: tuple[str, int | None] | None,
              assists: Any) -> None:
        victim = actor(event.victim)
        if victim is None:
            return
        dead = self.players.get(victim[0])
        if dead is not None:
            dead.died()
        if not in_game(event):
            return
        killer = actor(killer_c)
        player = self._player(killer[0], killer_c) if killer else None
        if player is not None and killer is not None:
            if is_enemy(killer, victim):
                player.kills += 1
                player.weapon(weapon_of(info))[_KILLS] += 1
            elif is_teammate(killer, victim):
                player.team_kills += 1
        for account_id in assists:
            assistant = self._player(account_id)
            if assistant is not None:
                assistant.assists += 1
        # A killsteal: the victim was knocked by one team and finished by another.
        if (
            finisher and knocker and knocker[1] is not None and is_enemy(finisher, victim)
            and knocker[1] not in (finisher[1], victim[1])
        ):
            stealer = self._player(finisher[0])
            if stealer is not None:
                stealer.killsteals += 1

    def on_item_use(self, event: Event) -> None:
        item = event.item
        item_id = item.itemId if item else None
        if not item_id or not in_game(event):
            return
        heal, boost = item_id.startswith("Item_Heal_"), item_id.startswith("Item_Boost_")
        character = event.character
        if (heal or boost) and character:
            player = self._player(character.accountId, character)
            if player is not None:
                player.heals += heal
                player.boosts += boost

    def _throw(self, event: Event, counter: Counter[tuple[str, str]]) -> None:
        weapon, attacker_c = event.weapon, event.attacker
        item_id = weapon.itemId if weapon else None
        if not item_id or item_id in NOVELTY_THROWABLES or not in_game(event):
            return
        account_id = attacker_c.accountId if attacker_c else None
        if self._player(account_id, attacker_c) is not None:
            counter[(account_id, item_id)] += 1  # type: ignore[index]

    def on_throwable(self, event: Event) -> None:
        self._throw(event, self.thrown)

    def on_attack(self, event: Event) -> None:
        weapon = event.weapon
        if weapon and weapon.subCategory == "Throwable":
            self._throw(event, self.thrown_attacks)

    def on_position(self, sample: Sample) -> None:
        # Once per position sample: measured against the circle as SafeZone says.
        circle = self.zone.current
        event, at_phase, character, who = sample
        if circle is None or at_phase is None or at_phase <= 0 or who is None:  # in_game
            return
        if who[0] in self.ctx.dead:  # a corpse's sample (collectors.lives)
            return
        account_id, _, x, y, _ = who
        if x is None or y is None:  # a partial location still makes a human a player
            if character.location:  # type: ignore[union-attr]
                self._player(account_id, character)
            return
        player = self.players.get(account_id) or self._player(account_id, character)
        if player is not None:
            to_centre = hypot(x - circle[0], y - circle[1])
            player.sample(event.elapsedTime, to_centre, circle[2] - to_centre)

    def on_end(self, event: Event) -> None:
        result = as_fields(event.gameResultOnFinished)
        for entry in (result.results if result else None) or ():
            if entry and entry.accountId and isinstance(entry.rank, int):
                self.ranks[entry.accountId] = entry.rank
        for item in as_fields(event.characters) or ():
            character = (item.character or item) if item else None
            if character and character.accountId and character.ranking:
                self.ranks.setdefault(character.accountId, character.ranking)

    def finish(self) -> dict[str, list[Row]]:
        # Recent files log a throw both as LogPlayerUseThrowable and LogPlayerAttack: trust the
        # former when the match has any, else the latter (older files have only attacks).
        thrown = self.thrown or self.thrown_attacks
        throwables: Counter[str] = Counter()
        smokes: Counter[str] = Counter()
        for (account_id, item_id), n in thrown.items():
            throwables[account_id] += n
            if item_id == SMOKE:
                smokes[account_id] += n
        humans = {a for a in self.ctx.players if not is_bot(a)} | self.players.keys()
        stats, weapons = [], []
        for account_id in sorted(humans):
            p = self.players.get(account_id) or _Player()
            who = identity(self.ctx.players, account_id, self.characters.get(account_id))
            stats.append(
                (
                    self.ctx.match_id,
                    account_id,
                    *who,
                    self.ranks.get(account_id),
                    p.kills,
                    p.team_kills,
                    p.knocks,
                    p.assists,
                    p.killsteals,
                    p.damage_dealt,
                    *p.taken.values(),
                    p.heals,
                    p.boosts,
                    throwables.get(account_id, 0),
                    smokes.get(account_id, 0),
                    p.throwable_damage,
                    *p.circle_cells(),
                )
            )
            for category, (damage, hits, knocks, kills) in sorted(p.weapons.items()):
                weapons.append(
                    (self.ctx.match_id, account_id, *who, category, float(damage), hits, knocks,
                     kills)
                )
        return {PLAYER_MATCH_STATS.name: stats, WEAPON_STATS.name: weapons}
