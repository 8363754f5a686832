"""Synthetic PUBG matches for tests and benchmarks: realistic in shape, consistent in story.

Real telemetry cannot live in the repository, and a fixture of a dozen events proves little about
a processor that must chew 50-100k of them. This module plays a whole match instead: lobby, plane,
landings, circles, fights with knocks, finishes and revives, blue-zone deaths, loot, heals and
vehicles, until one team is left. It logs what PUBG would, with the keys, nesting and explicit
`null`s of PUBG's own files (see docs/telemetry.md beside the shared telemetry).

The story holds together, because tests check it: a victim dies once and never acts again, every
knock ends in a finish or a revive, each team's fights never overlap, LogMatchEnd's kill counts are
the kills logged. The same seed gives the same bytes: all randomness comes from one
`random.Random(seed)` and all timestamps from a fixed base shifted by the seed.
"""

from __future__ import annotations

import bisect
import gc
import gzip
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import orjson

Event = dict[str, Any]

PLANE_PHASE = 0.10000000149011612  # isGame on the plane, as PUBG stores 0.1 (a float32)
KILL_LAYOUTS = ("v2", "v1")
COMPRESSIONS = ("gzip", "double-gzip", "none")

_TICK = 10.0  # PUBG samples positions and the game state every 10 s
_CORPSE_S = 60.0  # ... and keeps sampling a dead player, health 0 where they died, this long
_LOBBY_S = 60.0
_BASE_TIME = datetime(2025, 7, 12, 17, 0, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("6b1f3c2e-8d4a-4f0e-9c71-2a5d9e8b7f10")
_INF = math.inf
_PLANE_Z = 50208.0


@dataclass(frozen=True)
class _Map:
    name: str
    size: float  # centimetres per side
    blue_causer: str  # damageCauserName of its blue zone
    places: tuple[str, ...]  # what `zone` lists near the drop


_MAPS = (
    _Map("Baltic_Main", 816000.0, "BattleRoyaleModeController_Def_C",
         ("pochinki", "rozhok", "school", "georgopol", "yasnayapolyana", "mylta", "primorsk",
          "novorepnoye", "lipovka", "gatka", "severny", "zharki")),
    _Map("Desert_Main", 816000.0, "BattleRoyaleModeController_Desert_C",
         ("pecado", "sanmartin", "hacienda", "losleones", "elpozo", "chumacera", "lapuebla")),
    _Map("Tiger_Main", 816000.0, "BattleRoyaleModeController_Tiger_C",
         ("hosan", "terminal", "palace", "airport", "songam", "ho-san")),
    _Map("DihorOtok_Main", 612000.0, "BattleRoyaleModeController_DihorOtok_C",
         ("castle", "cosmodrome", "dobro", "goroka", "volnova", "podvosto")),
    _Map("Savage_Main", 408000.0, "BattleRoyaleModeController_Savage_C",
         ("bootcamp", "paradise", "ruins", "campalpha", "painan")),
)


@dataclass(frozen=True)
class _Gun:
    item_id: str
    causer: str  # damageCauserName of its bullets
    sub_category: str
    damage: float  # per torso hit
    ammo: str


_GUNS = (
    _Gun("Item_Weapon_HK416_C", "WeapHK416_C", "Main", 41.0, "Item_Ammo_556mm_C"),
    _Gun("Item_Weapon_BerylM762_C", "WeapBerylM762_C", "Main", 44.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_AK47_C", "WeapAK47_C", "Main", 47.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_SCAR-L_C", "WeapSCAR-L_C", "Main", 41.0, "Item_Ammo_556mm_C"),
    _Gun("Item_Weapon_ACE32_C", "WeapACE32_C", "Main", 43.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_M16A4_C", "WeapM16A4_C", "Main", 43.0, "Item_Ammo_556mm_C"),
    _Gun("Item_Weapon_UMP_C", "WeapUMP_C", "Main", 35.0, "Item_Ammo_45ACP_C"),
    _Gun("Item_Weapon_Vector_C", "WeapVector_C", "Main", 31.0, "Item_Ammo_9mm_C"),
    _Gun("Item_Weapon_Mini14_C", "WeapMini14_C", "Main", 46.0, "Item_Ammo_556mm_C"),
    _Gun("Item_Weapon_SKS_C", "WeapSKS_C", "Main", 53.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_DP28_C", "WeapDP28_C", "Main", 51.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_Kar98k_C", "WeapKar98k_C", "Main", 79.0, "Item_Ammo_762mm_C"),
    _Gun("Item_Weapon_Saiga12_C", "WeapSaiga12_C", "Main", 24.0, "Item_Ammo_12Guage_C"),
    _Gun("Item_Weapon_G18_C", "WeapG18_C", "Handgun", 22.0, "Item_Ammo_9mm_C"),
)

# (damageReason, damage multiplier), repeated by how often each part is hit
_BODY = ((("HeadShot", 2.1),) * 2 + (("TorsoShot", 1.0),) * 9 + (("ArmShot", 0.6),) * 4
         + (("PelvisShot", 0.9),) * 2 + (("LegShot", 0.6),) * 3)

_HITS_PER_ATTACK = (0, 0, 1, 1, 1, 2, 2, 3, 3, 4)  # a LogPlayerAttack is a burst: 0-4 bullets land

# (itemId, damageCauserName, damageTypeCategory); smokes and flashbangs hurt nobody
_THROWABLES = (
    ("Item_Weapon_Grenade_C", "ProjGrenade_C", "Damage_Explosion_Grenade"),
    ("Item_Weapon_Grenade_C", "ProjGrenade_C", "Damage_Explosion_Grenade"),
    ("Item_Weapon_Molotov_C", "BP_MolotovFireDebuff_C", "Damage_Molotov"),
    ("Item_Weapon_SmokeBomb_C", "", ""),
    ("Item_Weapon_FlashBang_C", "", ""),
)

# (itemId, category, subCategory, stackCount), repeated by how often each is picked up
_AMMO = tuple((g.ammo, "Ammunition", "None", 30) for g in _GUNS)
_HEALS = (("Item_Heal_Bandage_C", "Use", "Heal", 5), ("Item_Heal_FirstAid_C", "Use", "Heal", 1),
          ("Item_Heal_MedKit_C", "Use", "Heal", 1))
_BOOSTS = (("Item_Boost_EnergyDrink_C", "Use", "Boost", 1),
           ("Item_Boost_PainKiller_C", "Use", "Boost", 1),
           ("Item_Boost_AdrenalineSyringe_C", "Use", "Boost", 1))
_GEAR = (
    ("Item_Armor_E_01_Lv1_C", "Equipment", "Vest", 1),
    ("Item_Armor_D_01_Lv2_C", "Equipment", "Vest", 1),
    ("Item_Armor_C_01_Lv3_C", "Equipment", "Vest", 1),
    ("Item_Head_E_01_Lv1_C", "Equipment", "Headgear", 1),
    ("Item_Head_F_01_Lv2_C", "Equipment", "Headgear", 1),
    ("Item_Head_G_01_Lv3_C", "Equipment", "Headgear", 1),
    ("Item_Back_E_01_Lv1_C", "Equipment", "backpack", 1),
    ("Item_Back_F_01_Lv2_C", "Equipment", "backpack", 1),
    ("Item_Back_C_01_Lv3_C", "Equipment", "backpack", 1),
    ("Item_Weapon_Grenade_C", "Equipment", "Throwable", 1),
    ("Item_Weapon_SmokeBomb_C", "Equipment", "Throwable", 1),
    ("Item_Weapon_Molotov_C", "Equipment", "Throwable", 1),
)
_ATTACHMENTS = (
    ("Item_Attach_Weapon_Upper_Holosight_C", "Attachment", "Sight", 1),
    ("Item_Attach_Weapon_Upper_ACOG_01_C", "Attachment", "Sight", 1),
    ("Item_Attach_Weapon_Upper_Scope3x_C", "Attachment", "Sight", 1),
    ("Item_Attach_Weapon_Muzzle_Compensator_Large_C", "Attachment", "None", 1),
    ("Item_Attach_Weapon_Magazine_Extended_Large_C", "Attachment", "None", 1),
    ("Item_Attach_Weapon_Lower_Foregrip_C", "Attachment", "None", 1),
)
_LOOT = _AMMO * 2 + _HEALS * 2 + _BOOSTS + _GEAR + _ATTACHMENTS
_EQUIPPED = frozenset(("Vest", "Headgear", "backpack", "Throwable"))
_CARS = ("Dacia_A_01_v2_C", "Uaz_A_01_C", "Uaz_C_01_C", "BP_Mirado_A_02_C", "Buggy_A_01_C",
         "BP_Motorbike_04_C", "BP_PickupTruck_A_01_C")
_BLUE_DPS = (0.4, 0.6, 0.8, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0)  # health per second, by circle
_NAME_HEADS = ("Silent", "Dark", "Crazy", "Lucky", "Sneaky", "Toxic", "Frosty", "Rapid", "Lone",
               "Iron", "Mad", "Tiny", "Royal", "Ghost", "Night", "Salty", "Wild", "Cold")
_NAME_TAILS = ("Wolf", "Sniper", "Camper", "Panda", "Rusher", "Fox", "Pan", "Chicken", "Medic",
               "Viking", "Raven", "Tiger", "Knight", "Bandit", "Hunter", "Noob", "Goat")


def match_id_for(seed: int) -> str:
    """The match's uuid: a pure function of the seed, so a corpus can be regenerated by name."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"pewproc.synth.{seed}"))


def generate_match(
    seed: int,
    *,
    players: int = 100,
    team_size: int = 4,
    kill_layout: str = "v2",
    duration_s: float = 1800.0,
    bots: int = 0,
    match_kind: str = "official",
) -> list[Event]:
    """The events of one whole match, in PUBG's order: LogMatchDefinition first, then by `_D`."""
    if players < 1 or team_size < 1 or not 0 <= bots <= players or duration_s <= 0:
        raise ValueError("need players >= 1, team_size >= 1, 0 <= bots <= players, duration_s > 0")
    if kill_layout not in KILL_LAYOUTS:
        raise ValueError(f"kill_layout must be one of {KILL_LAYOUTS}, not {kill_layout!r}")
    sim = _MatchSim(seed, players, team_size, kill_layout, float(duration_s), bots, match_kind)
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of new, acyclic dicts: collection passes doubled the time
    try:
        return sim.run()
    finally:
        if collecting:
            gc.enable()


def write_match(path: Path, events: list[Event], *, compression: str = "gzip") -> int:
    """Write a match as PUBG serves it (or as it is found on disk); returns the bytes written.

    gzip's header time is zeroed so the same events always give the same file.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    data = orjson.dumps(events)
    for _ in range({"none": 0, "gzip": 1, "double-gzip": 2}[compression]):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def generate_corpus(directory: Path, count: int, seed: int,
                    **kwargs: Any) -> list[tuple[str, Path]]:
    """`count` matches laid out as the old worker stored them: `matchID={id}/raw.json.gz`.

    Match i uses seed `seed + i`, so any one of them can be regenerated alone.
    """
    written = []
    for i in range(count):
        match_seed = seed + i
        match_id = match_id_for(match_seed)
        path = Path(directory) / f"matchID={match_id}" / "raw.json.gz"
        write_match(path, generate_match(match_seed, **kwargs))
        written.append((match_id, path))
    return written


def _item(spec: tuple[str, str, str, int], attached: list[str] | None = None) -> Event:
    item_id, category, sub_category, stack = spec
    return {"itemId": item_id, "stackCount": stack, "category": category,
            "subCategory": sub_category, "attachedItems": attached or []}


def _gun_item(gun: _Gun) -> Event:
    return _item((gun.item_id, "Weapon", gun.sub_category, 1))


def _damage_info(reason: str, category: str, causer: str, distance: float) -> Event:
    return {"damageReason": reason, "damageTypeCategory": category, "damageCauserName": causer,
            "additionalInfo": [], "distance": distance, "isThroughPenetrableWall": False}


def _no_vehicle() -> Event:
    """What kill events carry for a player on foot (PUBG logs an empty vehicle, not null)."""
    return {"vehicleType": "", "vehicleId": "", "seatIndex": -1, "healthPercent": 0,
            "feulPercent": 0, "altitudeAbs": 0, "altitudeRel": 0, "velocity": 0,
            "isWheelsInAir": False, "isInWaterVolume": False, "isEngineOn": True,
            "location": {"x": 0, "y": 0, "z": 0}}


def _nobody() -> Event:
    """The empty character older files put where there is no killer or assistant."""
    return {"name": "", "teamId": 0, "health": 0, "location": {"x": 0, "y": 0, "z": 0},
            "ranking": 0, "individualRanking": 0, "accountId": "", "isInBlueZone": False,
            "isInRedZone": False, "inSpecialZone": "", "isInVehicle": False, "zone": [],
            "type": ""}


def _stats(kills: int, foot_m: float, ride_m: float, chute_m: float, fall_m: float) -> Event:
    zero_bp = {"byPlayTime": 0, "byRanking": 0, "byKills": 0, "byDamageDealt": 0,
               "boostAmount": 0, "byModeScore": 0}
    return {"killCount": kills, "distanceOnFoot": round(foot_m, 3), "distanceOnSwim": 0,
            "distanceOnVehicle": round(ride_m, 3), "distanceOnParachute": round(chute_m, 3),
            "distanceOnFreefall": round(fall_m, 3), "bpRewardDetail": zero_bp,
            "arcadeRewardDetail": {"byPlayTime": 0}, "statTrakDataPairs": [],
            "headshotStatTrakDataPairs": []}


@dataclass(eq=False, slots=True)
class _Player:
    slot: int
    name: str
    account_id: str
    team: _Team
    gun: _Gun
    dx: float  # offset from the team's centre, cm
    dy: float
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    health: float = 100.0
    in_blue: bool = False
    in_vehicle: bool = False
    jump_at: float = 0.0
    landed_at: float = _INF
    died_at: float = _INF  # set when the death is decided, which is before it is logged
    corpse: Event | None = None  # the character as it died, for PUBG's samples of the dead
    downs: list[tuple[float, float]] = field(default_factory=list)  # knocked intervals
    hit_by: list[_Player] = field(default_factory=list)  # this fight; a list keeps it ordered
    kills: int = 0
    attacks: int = 0
    shots: int = 0
    hits: int = 0
    damage: float = 0.0
    boost_until: float = -_INF
    foot_m: float = 0.0
    ride_m: float = 0.0
    chute_m: float = 0.0
    fall_m: float = 0.0
    individual_rank: int = 1  # survivors share 1

    def free(self, start: float, end: float) -> bool:
        """Alive and on their feet from `start` to `end`: may loot, heal, shoot."""
        return end < self.died_at and all(end < a or start >= b for a, b in self.downs)


@dataclass(eq=False, slots=True)
class _Team:
    team_id: int
    members: list[_Player] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    zone: list[str] = field(default_factory=list)
    pace: float = 1.0  # how promptly it runs from the blue zone
    circle: int = 0  # the last circle it reacted to
    edge: float = 0.6  # where in that circle it means to be, as a share of its radius
    ready_at: float = _INF  # landed and armed
    busy_until: float = -_INF  # in a fight or a vehicle: nothing else may happen to it
    ride_from: float = _INF
    ride_to: float = -_INF
    eliminated_at: float = _INF
    rank: int = 1

    def alive(self) -> list[_Player]:
        return [m for m in self.members if m.died_at == _INF]


class _Zones:
    """The circles and phases: isGame 0.1 on the plane, then k while circle k is announced and
    k + 0.5 while the blue zone shrinks onto it. Each circle lies inside the one before."""

    def __init__(self, rng: random.Random, size: float, plane_end: float, duration: float) -> None:
        self.circles = max(3, min(9, round(8 * math.sqrt(duration / 1800.0))))
        self.plane_end = plane_end
        self.half = (duration - plane_end) / (2 * self.circles)
        centre = size / 2
        rings = [(centre, centre, size * 0.7071)]
        radius = size * 0.25
        x = rng.uniform(radius + size * 0.05, size * 0.95 - radius)
        y = rng.uniform(radius + size * 0.05, size * 0.95 - radius)
        rings.append((x, y, radius))
        for _ in range(self.circles - 1):
            px, py, pr = rings[-1]
            radius = pr * rng.uniform(0.5, 0.6)
            angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.9) * (pr - radius)
            rings.append((px + reach * math.cos(angle), py + reach * math.sin(angle), radius))
        self.rings = rings
        self.bounds = [-_INF, 0.0] + [plane_end + i * self.half for i in range(2 * self.circles)]
        self.values: list[float] = [0, PLANE_PHASE]
        for k in range(1, self.circles + 1):
            self.values += [k, k + 0.5]

    def phase(self, t: float) -> float:
        return self.values[bisect.bisect_right(self.bounds, t) - 1]

    def at(self, t: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(safety zone, poison-gas warning) at `t`, each (x, y, radius); a warning of radius 0
        before the first circle is announced."""
        if t < self.plane_end:
            return self.rings[0], (0.0, 0.0, 0.0)
        step = min(int((t - self.plane_end) / self.half), 2 * self.circles - 1)
        k = step // 2 + 1
        before, target = self.rings[k - 1], self.rings[k]
        if step % 2 == 0:
            return before, target
        f = min(1.0, (t - self.plane_end - step * self.half) / self.half)
        (bx, by, br), (tx, ty, tr) = before, target
        return (bx + (tx - bx) * f, by + (ty - by) * f, br + (tr - br) * f), target

    def circle(self, t: float) -> int:
        """0 before the first circle, else the circle being announced or shrunk onto."""
        if t < self.plane_end:
            return 0
        return min(int((t - self.plane_end) / self.half) // 2 + 1, self.circles)

    def shrink_end(self, t: float) -> float:
        return self.plane_end + 2 * self.half * self.circle(t)


class _MatchSim:
    """Plays one match forward in 10-second ticks and records what PUBG would log.

    Each tick: the game state, team moves, positions, new fights, the blue zone, vehicles, then
    the small stuff (loot, doors, heals) of everyone who is still up. A fight is played out whole
    when it starts, knocks and their fates included, and keeps both teams busy until it ends, so
    nothing decided later can contradict it. Deaths are decided before they are logged, and the
    small stuff of a tick is drawn after that tick's deaths are known.
    """

    def __init__(self, seed: int, players: int, team_size: int, layout: str, duration: float,
                 bots: int, kind: str) -> None:
        self.rng = rng = random.Random(seed)
        self.match_id = match_id_for(seed)
        self.layout, self.kind, self.team_size = layout, kind, team_size
        self.duration, self.scale = duration, duration / 1800.0
        self.map = rng.choice(_MAPS)
        self.plane_end = 150.0 * self.scale
        self.zones = _Zones(rng, self.map.size, self.plane_end, duration)
        self.start_ms = int(_BASE_TIME.timestamp() * 1000) + rng.randrange(120_000, 2_400_000)
        self.stamps: dict[int, str] = {}
        self.out: list[tuple[float, int, str, Event]] = []
        self.seq = count()
        self.teams = self._make_teams(players, team_size, bots)
        self.players = [p for team in self.teams for p in team.members]
        self.alive_teams = list(self.teams)
        self.n_alive = players
        self.dead: list[_Player] = []
        self.deaths: list[tuple[float, _Player, Event, Event]] = []
        self.t_end = _INF if len(self.teams) > 1 else duration
        self.last_death = 0.0
        self.fights_from = self.final_from = _INF
        self.plane = (0.0, 0.0, 0.0, 0.0)  # x0, y0, vx, vy
        self.fillers = self._filler_table()

    # --- setup -------------------------------------------------------------------------------

    def _make_teams(self, players: int, team_size: int, bots: int) -> list[_Team]:
        rng = self.rng
        n_teams = -(-players // team_size)
        team_ids = sorted(rng.sample(range(1, n_teams + n_teams // 4 + 2), n_teams))
        teams = [_Team(tid, pace=rng.uniform(0.55, 1.3)) for tid in team_ids]
        names: set[str] = set()
        for slot in range(players):
            name = f"{rng.choice(_NAME_HEADS)}{rng.choice(_NAME_TAILS)}{rng.randrange(1000)}"
            while name in names:
                name += rng.choice("_-x0")
            names.add(name)
            is_bot = slot >= players - bots
            account = (f"ai.{slot - (players - bots) + 1}" if is_bot
                       else f"account.{rng.getrandbits(128):032x}")
            team = teams[slot // team_size]
            team.members.append(_Player(slot, name, account, team, rng.choice(_GUNS),
                                        rng.uniform(-1500, 1500), rng.uniform(-1500, 1500)))
        return teams

    def _filler_table(self) -> tuple[tuple[float, bool, Callable[[_Player, float], None]], ...]:
        """(chance per player per tick, more likely right after landing, action)."""
        return (
            (0.70, True, self._pickup),
            (0.60, True, self._pickup),
            (0.30, True, self._door),
            (0.18, False, self._swap),
            (0.15, False, self._attach),
            (0.13, False, self._detach),
            (0.11, False, self._drop),
            (0.08, True, self._lootbox),
            (0.09, False, self._vault),
            (0.07, False, self._reload),
            (0.05, True, self._window),
            (0.60, False, self._heal),
            (0.08, False, self._boost),
            (0.08, False, self._practice),
            (0.02, False, self._fall),
        )

    # --- output ------------------------------------------------------------------------------

    def emit(self, t: float, kind: str, body: Event) -> None:
        self.out.append((t, next(self.seq), kind, body))

    def char(self, p: _Player) -> Event:
        """A Character as PUBG logs it: a snapshot, so later changes never leak into it."""
        return {"name": p.name, "teamId": p.team.team_id, "health": p.health,
                "location": {"x": p.x, "y": p.y, "z": p.z}, "ranking": 0,
                "individualRanking": 0, "accountId": p.account_id, "isInBlueZone": p.in_blue,
                "isInRedZone": False, "inSpecialZone": "None", "isInVehicle": p.in_vehicle,
                "zone": [*p.team.zone], "type": "user"}

    def stamp(self, t: float, digits: int = 3) -> str:
        """ISO-8601 UTC `_D` of match time `t` (seconds since LogMatchStart)."""
        units = 10 ** digits
        ticks = self.start_ms * (units // 1000) + round(t * units)
        sec, frac = divmod(ticks, units)
        prefix = self.stamps.get(sec)
        if prefix is None:
            prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self.stamps[sec] = prefix
        return f"{prefix}.{frac:0{digits}d}Z"

    def place(self, p: _Player) -> None:
        team, size = p.team, self.map.size
        p.x = round(min(max(team.x + p.dx, 100.0), size - 100.0) * 16) / 16
        p.y = round(min(max(team.y + p.dy, 100.0), size - 100.0) * 16) / 16
        p.z = round((team.z + (p.dx % 97)) * 64) / 64

    # --- the match ---------------------------------------------------------------------------

    def run(self) -> list[Event]:
        self._lobby()
        self._plane()
        t = 0.0
        while t < self.t_end:
            self._tick(t)
            t += _TICK
        return self._finish()

    def _lobby(self) -> None:
        rng, size = self.rng, self.map.size
        lx, ly = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size
        n = len(self.players)
        for p in self.players:
            t = -_LOBBY_S + 50.0 * p.slot / n + rng.uniform(0, 0.5)
            p.x, p.y, p.z = lx + rng.uniform(-4000, 4000), ly + rng.uniform(-4000, 4000), 465.0
            self.emit(t, "LogPlayerLogin", {"accountId": p.account_id})
            self.emit(t + 0.3, "LogPlayerCreate", {"character": self.char(p)})
            self.emit(t + 1.0, "LogPlayerPosition", {
                "character": self.char(p), "elapsedTime": 0, "numAlivePlayers": p.slot + 1,
                "vehicle": None})
        wrappers = [{"character": self.char(p), "primaryWeaponFirst": "", "primaryWeaponSecond": "",
                     "secondaryWeapon": "", "spawnKitIndex": 0} for p in self.players]
        self.emit(0.0, "LogMatchStart", {
            "mapName": self.map.name, "weatherId": rng.choice(("Clear", "Clouds", "Sunset")),
            "characters": wrappers, "cameraViewBehaviour": "FpsOnly", "teamSize": self.team_size,
            "isCustomGame": self.kind == "custom", "isEventMode": False,
            "blueZoneCustomOptions": "[]"})

    def _plane(self) -> None:
        """Everyone boards at the start, teams jump along the flight path and land together."""
        rng, size, scale = self.rng, self.map.size, self.scale
        (x0, y0), (x1, y1) = self._flight_path()
        flight = 100.0 * scale
        self.plane = (x0, y0, (x1 - x0) / flight, (y1 - y0) / flight)
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        parachute = ("Item_Back_B_01_StartParachutePack_C", "Equipment", "backpack", 1)
        for team in self.teams:
            jump = rng.uniform(0.15, 0.85) * flight + 5.0 * scale
            jx, jy = self._plane_at(jump)
            side = rng.uniform(-0.12, 0.12) * size
            team.x = min(max(jx - uy * side, 0.02 * size), 0.98 * size)
            team.y = min(max(jy + ux * side, 0.02 * size), 0.98 * size)
            team.z = rng.uniform(150.0, 3000.0)
            team.zone = [rng.choice(self.map.places)] if rng.random() < 0.7 else []
            for p in team.members:
                self._board(p, parachute)
                p.jump_at = jump + rng.uniform(0, 2.0) * scale
                p.landed_at = p.jump_at + rng.uniform(45.0, 80.0) * scale
                self._jump(p, parachute)
            team.ready_at = max(p.landed_at for p in team.members) + max(10.0, 15.0 * scale)
        self.fights_from = min(t.ready_at for t in self.teams)
        self.final_from = max(self.fights_from + _TICK, self.duration - 90.0 * scale)

    def _flight_path(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """From one edge of the map to the opposite one, in any of the four directions."""
        rng, size = self.rng, self.map.size
        start = (0.01 * size, rng.uniform(0.05, 0.95) * size)
        end = (0.99 * size, rng.uniform(0.05, 0.95) * size)
        if rng.random() < 0.5:
            start, end = start[::-1], end[::-1]
        return (end, start) if rng.random() < 0.5 else (start, end)

    def _plane_at(self, t: float) -> tuple[float, float]:
        x0, y0, vx, vy = self.plane
        return x0 + vx * t, y0 + vy * t

    def _aircraft(self, t: float) -> Event:
        x, y = self._plane_at(t)
        return {"vehicleType": "TransportAircraft", "vehicleId": "DummyTransportAircraft_C",
                "seatIndex": 0, "healthPercent": 0, "feulPercent": 0, "altitudeAbs": 0,
                "altitudeRel": 0, "velocity": 1799.87, "isWheelsInAir": False,
                "isInWaterVolume": False, "isEngineOn": False,
                "location": {"x": x, "y": y, "z": 50000}}

    def _board(self, p: _Player, parachute: tuple[str, str, str, int]) -> None:
        t = 0.01 + p.slot * 0.0005
        p.x, p.y = self._plane_at(t)
        p.z, p.in_vehicle = _PLANE_Z, True
        self.emit(t, "LogVehicleRide", {"character": self.char(p), "vehicle": self._aircraft(t),
                                        "seatIndex": 0, "fellowPassengers": []})
        self.emit(t, "LogItemPickup", {"character": self.char(p), "item": _item(parachute)})
        self.emit(t, "LogItemEquip", {"character": self.char(p), "item": _item(parachute)})

    def _jump(self, p: _Player, parachute: tuple[str, str, str, int]) -> None:
        rng = self.rng
        jx, jy = p.x, p.y = self._plane_at(p.jump_at)
        self.emit(p.jump_at, "LogVehicleLeave", {
            "character": self.char(p), "vehicle": self._aircraft(p.jump_at), "rideDistance": 0,
            "seatIndex": 0, "maxSpeed": 65.72, "fellowPassengers": []})
        p.in_vehicle = False
        self.place(p)
        p.fall_m = rng.uniform(220.0, 300.0)
        p.chute_m = math.hypot(p.x - jx, p.y - jy) / 100.0
        self.emit(p.landed_at, "LogParachuteLanding", {"character": self.char(p),
                                                       "distance": round(p.chute_m, 3)})
        self.emit(p.landed_at, "LogItemUnequip", {"character": self.char(p),
                                                  "item": _item(parachute)})
        t = p.landed_at + rng.uniform(1.0, 6.0)
        self.emit(t, "LogItemPickup", {"character": self.char(p), "item": _gun_item(p.gun)})
        self.emit(t, "LogItemEquip", {"character": self.char(p), "item": _gun_item(p.gun)})

    def _tick(self, t: float) -> None:
        alive = sum(1 for p in self.players if p.died_at > t)
        if t > 0:
            self._game_state(t, alive)
        self._move_teams(t)
        self._positions(t, alive)
        if len(self.alive_teams) > 1 and t >= self.fights_from:
            self._start_fights(t)
        if len(self.alive_teams) > 1:
            self._blue_zone(t)
        self._vehicles(t)
        self._small_stuff(t)
        self._phase_changes(t)

    def _game_state(self, t: float, alive: int) -> None:
        (sx, sy, sr), (wx, wy, wr) = self.zones.at(t)
        n, teams = len(self.players), len(self.teams)
        zero = {"x": 0, "y": 0, "z": 0}
        self.emit(t, "LogGameStatePeriodic", {"gameState": {
            "elapsedTime": round(t), "numStartTeams": teams,
            "numAliveTeams": sum(1 for team in self.teams if team.eliminated_at > t),
            "numParticipatedTeams": teams, "numJoinPlayers": n, "numStartPlayers": n,
            "numAlivePlayers": alive, "numParticipatedPlayers": n,
            "safetyZonePosition": {"x": sx, "y": sy, "z": 0}, "safetyZoneRadius": sr,
            "poisonGasWarningPosition": {"x": wx, "y": wy, "z": 0}, "poisonGasWarningRadius": wr,
            "redZonePosition": zero, "redZoneRadius": 0, "blackZonePosition": dict(zero),
            "blackZoneRadius": 0}})

    def _phase_changes(self, t: float) -> None:
        bounds = self.zones.bounds
        for i in range(bisect.bisect_left(bounds, t), bisect.bisect_left(bounds, t + _TICK)):
            _, (wx, wy, wr) = self.zones.at(bounds[i])
            inside = [p.account_id for p in self.players if p.died_at > bounds[i]
                      and wr and math.hypot(p.x - wx, p.y - wy) <= wr]
            self.emit(bounds[i], "LogPhaseChange", {"phase": i - 1, "elapsedTime": round(bounds[i]),
                                                    "playersInWhiteCircle": inside})

    def _move_teams(self, t: float) -> None:
        """Teams head for the next circle, some stopping short of it (they will meet the blue
        zone); a team in a vehicle moves three times as far. Teams in a fight stay put."""
        rng, size = self.rng, self.map.size
        _, (wx, wy, wr) = self.zones.at(t)
        circle = self.zones.circle(t)
        ticks_left = max(1.0, (self.zones.shrink_end(t) - t) / _TICK)
        for team in self.alive_teams:
            riding = team.ride_from <= t < team.ride_to
            if team.ready_at > t or (team.busy_until > t and not riding):
                continue
            if team.circle != circle:  # a new circle: some teams will cut it fine, or miss it
                team.circle, team.edge = circle, rng.uniform(0.2, 1.2)
            dx, dy = wx - team.x, wy - team.y
            d = math.hypot(dx, dy) or 1.0
            if wr and d > wr * team.edge:
                need = d - wr * team.edge
                step = min(need, max(3000.0, need / ticks_left * team.pace))
                ux, uy = dx / d, dy / d
            else:
                step, angle = rng.uniform(0, 3000.0), rng.uniform(0, 2 * math.pi)
                ux, uy = math.cos(angle), math.sin(angle)
            if riding:
                step *= 3
            team.x = min(max(team.x + ux * step, 0.01 * size), 0.99 * size)
            team.y = min(max(team.y + uy * step, 0.01 * size), 0.99 * size)
            team.z = min(max(team.z + rng.uniform(-200.0, 200.0), 100.0), 6000.0)
            if team.zone and rng.random() < 0.08:
                team.zone = []
            for p in team.members:
                if riding:
                    p.ride_m += step / 100
                else:
                    p.foot_m += step / 100
                self.place(p)

    def _positions(self, t: float, alive: int) -> None:
        rng = self.rng
        for p in self.players:
            te = t + 0.05 + rng.random() * 0.9
            if te >= p.died_at:
                if p.corpse is not None and te < p.died_at + _CORPSE_S:
                    self.emit(te, "LogPlayerPosition", {
                        "character": dict(p.corpse), "elapsedTime": round(te),
                        "numAlivePlayers": alive, "vehicle": None})
                continue
            vehicle: Event | None = None
            if te < p.jump_at:
                character = self.char(p)
                x, y = self._plane_at(te)
                character["location"] = {"x": x, "y": y, "z": _PLANE_Z}
                character["isInVehicle"] = True
                vehicle = self._aircraft(te)
            elif te < p.landed_at:
                character = self.char(p)
                jx, jy = self._plane_at(p.jump_at)
                f = (te - p.jump_at) / (p.landed_at - p.jump_at)
                character["location"] = {"x": jx + (p.x - jx) * f, "y": jy + (p.y - jy) * f,
                                         "z": p.z + (30000.0 - p.z) * (1 - f)}
            else:
                team = p.team
                p.in_vehicle = team.ride_from <= te < team.ride_to
                if p.in_vehicle:
                    vehicle = self._car(team, team.alive().index(p), rng.uniform(800, 2500))
                character = self.char(p)
            self.emit(te, "LogPlayerPosition", {"character": character, "elapsedTime": round(te),
                                                "numAlivePlayers": alive, "vehicle": vehicle})

    # --- fights ------------------------------------------------------------------------------

    def _target_alive(self, t: float) -> int:
        """How many should still be alive at `t`: deaths come early and then steadily."""
        u = min(1.0, max(0.0, (t - self.fights_from) / (self.final_from - self.fights_from)))
        n = len(self.players)
        return round(self.team_size + (n - self.team_size) * (1 - u) ** 1.3)

    def _start_fights(self, t: float) -> None:
        """Fights while fewer have died than the pace wants (all of them in the end game), then
        a few skirmishes that only wound, which is most of the shooting in a real match."""
        rng = self.rng
        forced = t >= self.final_from
        ready = [team for team in self.alive_teams if team.busy_until <= t and team.ready_at <= t]
        rng.shuffle(ready)
        while len(ready) >= 2 and (forced or self.n_alive > self._target_alive(t)):
            a = ready.pop()
            b = self._nearest(a, ready)
            self._fight(a, b, t + 1.0 + rng.random() * 8.0, forced=forced, lethal=True)
        chance = min(0.5, 0.08 * self.team_size)
        for a in list(ready):
            if a in ready and len(ready) >= 2 and rng.random() < chance:
                ready.remove(a)
                b = self._nearest(a, ready)
                self._fight(a, b, t + 1.0 + rng.random() * 8.0, forced=False, lethal=False)

    @staticmethod
    def _nearest(a: _Team, ready: list[_Team]) -> _Team:
        """The ready team nearest to `a`, taken off `ready`: fights are local."""
        b = min(ready, key=lambda other: (other.x - a.x) ** 2 + (other.y - a.y) ** 2)
        ready.remove(b)
        return b

    def _fight(self, a: _Team, b: _Team, t: float, *, forced: bool, lethal: bool) -> None:
        """Exchanges between two teams until one breaks off or is wiped; a forced fight (the
        end game) goes on until a team is gone. The bigger side shoots more often."""
        rng = self.rng
        self._face_off(a, b)
        for p in a.members + b.members:
            p.hit_by.clear()
        while True:
            alive_a, alive_b = a.alive(), b.alive()
            if rng.random() * (len(alive_a) + 0.5 + len(alive_b)) < len(alive_a) + 0.5:
                s, v = rng.choice(alive_a), rng.choice(alive_b)
            else:
                s, v = rng.choice(alive_b), rng.choice(alive_a)
            t = self._engage(s, v, t, forced, lethal)
            if not a.alive() or not b.alive() or (not forced and rng.random() < 0.25):
                break
            t += rng.uniform(0.5, 4.0)
        a.busy_until = b.busy_until = t + 2.0

    def _face_off(self, a: _Team, b: _Team) -> None:
        """The two teams close in to gun range, about the midpoint between them."""
        dx, dy = b.x - a.x, b.y - a.y
        d = math.hypot(dx, dy) or 1.0
        gap = self.rng.uniform(1500.0, 25000.0)
        mx, my = a.x + dx / 2, a.y + dy / 2
        a.x, a.y = mx - dx / d * gap / 2, my - dy / d * gap / 2
        b.x, b.y = mx + dx / d * gap / 2, my + dy / d * gap / 2
        for p in a.members + b.members:
            self.place(p)
            p.in_blue = False

    def _engage(self, s: _Player, v: _Player, t: float, forced: bool, lethal: bool) -> float:
        """`s` shoots at `v` (perhaps throwing something first) until `v` goes down, or takes
        cover (always before going down, if not `lethal`), or the bursts run out; returns when it
        is over."""
        rng = self.rng
        if lethal and rng.random() < 0.12:
            t, down = self._throw(s, v, t)
            if down:
                return down
        gun = s.gun
        bursts = rng.randint(2, 9)
        while forced or bursts > 0:
            bursts -= 1
            aid = self._attack(s, t, _gun_item(gun))
            for i in range(rng.choice(_HITS_PER_ATTACK)):
                reason, mult = rng.choice(_BODY)
                dmg = round(gun.damage * mult * rng.uniform(0.35, 0.75), 2)  # armour, range
                if not lethal and v.health - dmg < 15.0:
                    return t
                hit_at = t + 0.002 + i * 0.09
                self._hit(s, v, hit_at, aid, "Damage_Gun", reason, dmg, gun.causer)
                if v.health <= 0:
                    info = _damage_info(reason, "Damage_Gun", gun.causer, self._dist(s, v))
                    return self._down(s, v, hit_at + 0.001, aid, info)
            t += rng.uniform(0.3, 1.5)
        return t

    def _throw(self, s: _Player, v: _Player, t: float) -> tuple[float, float]:
        """A throwable; returns (time after it, time `v` went down or 0)."""
        rng = self.rng
        item_id, causer, category = rng.choice(_THROWABLES)
        weapon = _item((item_id, "Equipment", "Throwable", 1))
        s.attacks += 1
        aid = ((s.slot + 1) << 24) + s.attacks
        body = {"attackId": aid, "fireWeaponStackCount": 1, "attacker": self.char(s),
                "attackType": "Weapon", "weapon": weapon}
        self.emit(t, "LogPlayerUseThrowable", body)
        self.emit(t, "LogPlayerAttack", {**body, "attacker": self.char(s), "weapon": dict(weapon)})
        self.emit(t + 0.001, "LogItemUnequip", {"character": self.char(s), "item": dict(weapon)})
        t += rng.uniform(2.0, 4.0)
        if not causer or rng.random() < 0.4:
            return t, 0.0
        for _ in range(1 if category == "Damage_Explosion_Grenade" else rng.randint(2, 4)):
            dmg = round(rng.uniform(25.0, 90.0) if category == "Damage_Explosion_Grenade"
                        else rng.uniform(4.0, 12.0), 2)
            self._hit(s, v, t, aid, category, "NonSpecific", dmg, causer)
            if v.health <= 0:
                info = _damage_info("NonSpecific", category, causer, self._dist(s, v))
                return t, self._down(s, v, t + 0.001, aid, info)
            t += 1.0
        return t, 0.0

    def _attack(self, s: _Player, t: float, weapon: Event) -> int:
        s.attacks += 1
        s.shots += 1
        aid = ((s.slot + 1) << 24) + s.attacks
        self.emit(t, "LogPlayerAttack", {"attackId": aid, "fireWeaponStackCount": 1,
                                         "attacker": self.char(s), "attackType": "Weapon",
                                         "weapon": weapon})
        if s.shots % 10 == 0:
            self.emit(t + 0.001, "LogWeaponFireCount", {"character": self.char(s),
                                                        "weaponId": weapon["itemId"],
                                                        "fireCount": s.shots})
        return aid

    def _hit(self, s: _Player | None, v: _Player, t: float, aid: int, category: str,
             reason: str, dmg: float, causer: str) -> None:
        """LogPlayerTakeDamage; `s` None is the blue zone."""
        v.health = max(0.0, round(v.health - dmg, 2))
        if s is not None and s is not v:
            s.hits += 1
            s.damage += dmg
            if s not in v.hit_by:
                v.hit_by.append(s)
        self.emit(t, "LogPlayerTakeDamage", {
            "attackId": aid, "attacker": self.char(s) if s is not None else None,
            "victim": self.char(v), "damageTypeCategory": category, "damageReason": reason,
            "damage": dmg, "damageCauserName": causer, "isThroughPenetrableWall": False})

    def _dist(self, a: _Player, b: _Player) -> float:
        return round(math.hypot(a.x - b.x, a.y - b.y, a.z - b.z), 3)

    def _down(self, s: _Player, v: _Player, t: float, aid: int, info: Event) -> float:
        """`v` drops: knocked while a teammate still stands (mostly), else killed outright."""
        mates = [m for m in v.team.alive() if m is not v]
        if mates and self.rng.random() < 0.92:
            return self._knock(s, v, t, aid, info, mates)
        self._kill(v, t, s, aid, info, None)
        return t

    def _knock(self, s: _Player, v: _Player, t: float, aid: int, info: Event,
               mates: list[_Player]) -> float:
        """A knock and its one fate, played out at once: a revive by a teammate, or a finish by
        the knocker or one of the knocker's team. Returns when the fate is sealed."""
        rng = self.rng
        dbno_id = ((v.slot + 1) << 24) + len(v.downs)
        self.emit(t, "LogPlayerMakeGroggy", {
            "attackId": aid, "attacker": self.char(s), "victim": self.char(v),
            "damageReason": info["damageReason"], "damageTypeCategory": info["damageTypeCategory"],
            "damageCauserName": info["damageCauserName"], "damageCauserAdditionalInfo": [],
            "victimWeapon": v.gun.causer, "victimWeaponAdditionalInfo": [],
            "distance": info["distance"], "isAttackerInVehicle": False, "dBNOId": dbno_id,
            "isThroughPenetrableWall": False})
        if v.landed_at <= t:  # PUBG logs the landing again, at health 0, as real files show
            self.emit(t, "LogParachuteLanding", {"character": {**self.char(v), "health": 0},
                                                 "distance": round(v.chute_m, 3)})
        v.health = 100.0  # the knocked player's own pool, drained by bleeding and finishing
        if rng.random() < 0.27:
            end = t + rng.uniform(11.0, 17.0)
            self._bleed(v, t, end)
            v.downs.append((t, end))
            v.health = 10.0
            self.emit(end, "LogPlayerRevive", {"reviver": self.char(rng.choice(mates)),
                                               "victim": self.char(v), "dBNOId": dbno_id,
                                               "useTraumaBag": False})
            return end
        finisher = s if rng.random() < 0.7 else rng.choice(s.team.alive())
        end = t + rng.uniform(2.0, 9.0)
        self._bleed(v, t, end - 1.0)
        v.downs.append((t, end))
        finish_aid, finish_info = self._finish_off(finisher, v, end - 1.0)
        self._kill(v, end, finisher, finish_aid, finish_info, (s, dbno_id, info))
        return end

    def _bleed(self, v: _Player, start: float, end: float) -> None:
        """Knocked players bleed once a second; PUBG logs it as damage 0 to themselves."""
        t = start + 1.0
        while t < end:
            v.health = max(1.0, v.health - 1.0)
            self.emit(t, "LogPlayerTakeDamage", {
                "attackId": -1, "attacker": self.char(v), "victim": self.char(v),
                "damageTypeCategory": "Damage_Groggy", "damageReason": "None", "damage": 0,
                "damageCauserName": "PlayerMale_A_C", "isThroughPenetrableWall": False})
            t += 1.0

    def _finish_off(self, f: _Player, v: _Player, t: float) -> tuple[int, Event]:
        """Shots at a knocked player until the pool is empty, all within one second."""
        rng = self.rng
        while True:
            aid = self._attack(f, t, _gun_item(f.gun))
            if rng.random() < 0.75:
                reason, mult = rng.choice(_BODY)
                dmg = round(f.gun.damage * mult * rng.uniform(0.9, 1.2), 2)
                self._hit(f, v, t + 0.002, aid, "Damage_Gun", reason, dmg, f.gun.causer)
                if v.health <= 0:
                    return aid, _damage_info(reason, "Damage_Gun", f.gun.causer, self._dist(f, v))
            t += 0.04

    def _kill(self, v: _Player, t: float, killer: _Player | None, aid: int, info: Event,
              knock: tuple[_Player, int, Event] | None) -> None:
        """Decide `v`'s death at `t` and log it; `killer` None is the blue zone."""
        v.died_at, v.health = t, 0.0
        self.n_alive -= 1
        self.dead.append(v)
        if killer is not None:
            killer.kills += 1
        self.last_death = max(self.last_death, t)
        team = v.team
        if not team.alive():
            team.eliminated_at = t
            self.alive_teams.remove(team)
            if len(self.alive_teams) == 1:
                self.t_end = self.last_death + self.rng.uniform(2.0, 6.0)
        victim = v.corpse = self.char(v)
        result = {"rank": 0, "gameResult": "", "teamId": team.team_id,
                  "stats": _stats(v.kills, v.foot_m, v.ride_m, v.chute_m, v.fall_m),
                  "accountId": v.account_id, "isRewardAbuse": False}
        self.deaths.append((t, v, victim, result))
        assists = [] if killer is None else [p for p in v.hit_by
                                             if p is not killer and p.team is killer.team]
        build = self._kill_v2 if self.layout == "v2" else self._kill_v1
        kind, body = build(v, victim, result, killer, aid, info, knock, assists)
        self.emit(t, kind, body)

    def _kill_v2(self, v: _Player, victim: Event, result: Event, killer: _Player | None,
                 aid: int, info: Event, knock: tuple[_Player, int, Event] | None,
                 assists: list[_Player]) -> tuple[str, Event]:
        if knock is not None:
            knocker, dbno_id, knock_info = knock
            maker: Event | None = self.char(knocker)
        else:
            dbno_id, maker = -1, None
            knock_info = (dict(info) if killer is None
                          else _damage_info("NonSpecific", "Damage_None", "None", -1))
        return "LogPlayerKillV2", {
            "attackId": aid, "dBNOId": dbno_id, "victimGameResult": result, "victim": victim,
            "victimVehicle": _no_vehicle(), "victimWeapon": v.gun.causer,
            "victimWeaponAdditionalInfo": [], "dBNOMaker": maker, "dBNODamageInfo": knock_info,
            "finisher": self.char(killer) if killer else None, "finishDamageInfo": info,
            "killer": self.char(killer) if killer else None,
            "killerDamageInfo": dict(info) if killer else _damage_info("", "", "", -1),
            "killerVehicle": _no_vehicle(),
            "assists_AccountId": [p.account_id for p in assists],
            "teamKillers_AccountId": [], "isSuicide": False}

    def _kill_v1(self, v: _Player, victim: Event, result: Event, killer: _Player | None,
                 aid: int, info: Event, knock: tuple[_Player, int, Event] | None,
                 assists: list[_Player]) -> tuple[str, Event]:
        return "LogPlayerKill", {
            "attackId": aid, "killer": self.char(killer) if killer else _nobody(),
            # Older files name the killer himself as assistant when nobody helped.
            "victim": victim, "assistant": self.char(assists[0]) if assists
            else self.char(killer) if killer else _nobody(),
            "dBNOId": knock[1] if knock else -1, "damageReason": info["damageReason"],
            "damageTypeCategory": info["damageTypeCategory"],
            "damageCauserName": info["damageCauserName"], "damageCauserAdditionalInfo": [],
            "distance": info["distance"], "victimGameResult": result,
            "victimWeapon": v.gun.causer, "victimWeaponAdditionalInfo": [],
            "isThroughPenetrableWall": False}

    # --- the blue zone and vehicles ----------------------------------------------------------

    def _blue_zone(self, t: float) -> None:
        """Idle teams caught outside the blue circle take damage every few seconds; some die of
        it (no knock, no killer)."""
        rng = self.rng
        (sx, sy, sr), _ = self.zones.at(t + 5.0)
        per_second = _BLUE_DPS[min(self.zones.circle(t), len(_BLUE_DPS) - 1)]
        causer = self.map.blue_causer
        for team in list(self.alive_teams):
            if team.busy_until > t or team.ready_at > t:
                continue
            outside = math.hypot(team.x - sx, team.y - sy) > sr
            if outside:
                team.busy_until = t + _TICK  # running: no vehicle this tick
            for p in team.alive():
                p.in_blue = outside
                if not outside:
                    continue
                for te in sorted(t + 1.0 + rng.random() * 9.0 for _ in range(rng.randint(5, 9))):
                    self._hit(None, p, te, -1, "Damage_BlueZone", "NonSpecific",
                              round(per_second * rng.uniform(1.0, 2.0), 2), causer)
                    if p.health <= 0:
                        info = _damage_info("NonSpecific", "Damage_BlueZone", causer, -1)
                        self._kill(p, te + 0.001, None, -1, info, None)
                        break
                if len(self.alive_teams) == 1:
                    return

    def _car(self, team: _Team, seat: int, velocity: float) -> Event:
        return {"vehicleType": "WheeledVehicle", "vehicleId": _CARS[team.team_id % len(_CARS)],
                "seatIndex": seat, "healthPercent": 100, "feulPercent": 73.5, "altitudeAbs": 0,
                "altitudeRel": 0, "velocity": round(velocity, 3), "isWheelsInAir": False,
                "isInWaterVolume": False, "isEngineOn": True,
                "location": {"x": team.x, "y": team.y, "z": team.z}}

    def _vehicles(self, t: float) -> None:
        """Now and then an idle team drives a while; nothing else happens to it meanwhile."""
        rng = self.rng
        for team in self.alive_teams:
            if team.busy_until > t or team.ready_at > t or rng.random() >= 0.05:
                continue
            start = t + 1.0 + rng.random() * 3.0
            end = start + rng.uniform(15.0, 60.0) * max(self.scale, 0.25)
            team.ride_from, team.ride_to, team.busy_until = start, end, end + 1.0
            riders = team.alive()
            for seat, p in enumerate(riders):
                p.in_vehicle = True
                self.emit(start + seat * 0.4, "LogVehicleRide", {
                    "character": self.char(p), "vehicle": self._car(team, seat, 0.0),
                    "seatIndex": seat, "fellowPassengers": []})
                if rng.random() < 0.08:
                    dmg = round(min(rng.uniform(3.0, 15.0), p.health - 1.0), 2)
                    self._hit(riders[0], p, (start + end) / 2, -1, "Damage_VehicleCrashHit",
                              "NonSpecific", max(dmg, 0.0), _CARS[team.team_id % len(_CARS)])
                self.emit(end + seat * 0.3, "LogVehicleLeave", {
                    "character": self.char(p), "vehicle": self._car(team, seat, 0.0),
                    "rideDistance": round(rng.uniform(300.0, 2000.0), 2), "seatIndex": seat,
                    "maxSpeed": round(rng.uniform(60.0, 120.0), 2), "fellowPassengers": []})
                p.in_vehicle = False

    # --- the small stuff ---------------------------------------------------------------------

    def _small_stuff(self, t: float) -> None:
        """Loot, doors, heals, stray shots: each player on their feet, a few things a tick.
        An action logs its events within a second, and only if the player is free all along."""
        rng = self.rng
        rand = rng.random
        fresh = 150.0 * max(self.scale, 0.3)
        for p in self.players:
            team = p.team
            if p.died_at <= t or p.landed_at > t or (team.ride_from < t + _TICK
                                                     and team.ride_to > t):
                continue
            loot = 2.5 if t - p.landed_at < fresh else 0.6
            for rate, early, action in self.fillers:
                if rand() < (rate * loot if early else rate):
                    te = t + rand() * _TICK
                    if p.free(te, te + 1.0):
                        action(p, te)
            if p.boost_until > t:
                self._boost_ticks(p, t)

    def _pickup(self, p: _Player, t: float) -> None:
        rng = self.rng
        if rng.random() < 0.06:
            gun = rng.choice(_GUNS)
            self.emit(t, "LogItemPickup", {"character": self.char(p), "item": _gun_item(gun)})
            if rng.random() < 0.5:
                self.emit(t, "LogItemUnequip", {"character": self.char(p),
                                                "item": _gun_item(p.gun)})
                p.gun = gun
                self.emit(t, "LogItemEquip", {"character": self.char(p), "item": _gun_item(gun)})
            return
        spec = rng.choice(_LOOT)
        self.emit(t, "LogItemPickup", {"character": self.char(p), "item": _item(spec)})
        if spec[2] in _EQUIPPED:
            self.emit(t, "LogItemEquip", {"character": self.char(p), "item": _item(spec)})
        elif spec[1] == "Attachment":
            self.emit(t + 0.05, "LogItemAttach", {"character": self.char(p),
                                                  "parentItem": _gun_item(p.gun),
                                                  "childItem": _item(spec)})

    def _swap(self, p: _Player, t: float) -> None:
        spec = self.rng.choice(_GEAR)
        self.emit(t, "LogItemUnequip", {"character": self.char(p), "item": _item(spec)})
        self.emit(t + 0.001, "LogItemDrop", {"character": self.char(p), "item": _item(spec)})
        better = self.rng.choice(_GEAR)
        self.emit(t + 0.5, "LogItemPickup", {"character": self.char(p), "item": _item(better)})
        self.emit(t + 0.5, "LogItemEquip", {"character": self.char(p), "item": _item(better)})

    def _attach(self, p: _Player, t: float) -> None:
        self.emit(t, "LogItemAttach", {"character": self.char(p), "parentItem": _gun_item(p.gun),
                                       "childItem": _item(self.rng.choice(_ATTACHMENTS))})

    def _detach(self, p: _Player, t: float) -> None:
        spec = self.rng.choice(_ATTACHMENTS)
        self.emit(t, "LogItemDetach", {"character": self.char(p),
                                       "parentItem": _item((p.gun.item_id, "Weapon",
                                                            p.gun.sub_category, 1), [spec[0]]),
                                       "childItem": _item(spec)})

    def _drop(self, p: _Player, t: float) -> None:
        spec = self.rng.choice(_AMMO + _HEALS + _BOOSTS)
        self.emit(t, "LogItemDrop", {"character": self.char(p), "item": _item(spec)})

    def _lootbox(self, p: _Player, t: float) -> None:
        """Loot from a dead player's box: only once someone has died, near enough in time."""
        owners = [d for d in self.dead[-6:] if d.died_at < t]
        if not owners:
            return
        owner = self.rng.choice(owners)
        for i in range(self.rng.randint(1, 4)):
            self.emit(t + i * 0.3, "LogItemPickupFromLootBox", {
                "character": self.char(p), "item": _item(self.rng.choice(_LOOT)),
                "ownerTeamId": owner.team.team_id, "creatorAccountId": owner.account_id})

    def _door(self, p: _Player, t: float) -> None:
        self.emit(t, "LogObjectInteraction", {
            "character": self.char(p), "objectType": "Door",
            "objectTypeStatus": self.rng.choice(("Opening", "Closing")),
            "objectTypeAdditionalInfo": []})

    def _window(self, p: _Player, t: float) -> None:
        self.emit(t, "LogObjectDestroy", {"character": self.char(p), "objectType": "Window",
                                          "objectLocation": {"x": p.x, "y": p.y, "z": p.z},
                                          "damageCauserName": ""})

    def _vault(self, p: _Player, t: float) -> None:
        self.emit(t, "LogVaultStart", {"character": self.char(p), "isLedgeGrab": False,
                                       "isVaultOnVehicle": False})

    def _reload(self, p: _Player, t: float) -> None:
        self.emit(t, "LogItemUse", {"character": self.char(p),
                                    "item": _item((p.gun.ammo, "Ammunition", "None", 30))})

    def _heal(self, p: _Player, t: float) -> None:
        spec = self.rng.choice(_HEALS)
        cap = 100.0 if spec[0] == "Item_Heal_MedKit_C" else 75.0
        amount = round(min(cap - p.health, 10.0 if "Bandage" in spec[0] else 75.0), 2)
        if amount <= 0:
            return
        item = _item(spec)
        self.emit(t, "LogItemUse", {"character": self.char(p), "item": item})
        p.health = round(p.health + amount, 2)
        self.emit(t + 0.03, "LogHeal", {"character": self.char(p), "item": dict(item),
                                        "healAmount": amount})

    def _boost(self, p: _Player, t: float) -> None:
        self.emit(t, "LogItemUse", {"character": self.char(p),
                                    "item": _item(self.rng.choice(_BOOSTS))})
        p.boost_until = t + 60.0

    def _boost_ticks(self, p: _Player, t: float) -> None:
        """Boosts heal a little every couple of seconds, logged as LogHeal with an empty item."""
        for i in range(self.rng.randint(2, 4)):
            te = t + 0.5 + i * 2.3
            if te >= p.boost_until or not p.free(te, te) or p.health >= 100.0:
                return
            amount = round(min(100.0 - p.health, self.rng.uniform(1.0, 3.0)), 2)
            p.health = round(p.health + amount, 2)
            self.emit(te, "LogHeal", {"character": self.char(p),
                                      "item": _item(("", "", "", 0)),
                                      "healAmount": amount})

    def _practice(self, p: _Player, t: float) -> None:
        """Shots at nobody logged: misses at distant enemies, shooting at doors, testing."""
        for i in range(self.rng.randint(1, 4)):
            self._attack(p, t + i * 0.15, _gun_item(p.gun))

    def _fall(self, p: _Player, t: float) -> None:
        dmg = round(min(self.rng.uniform(2.0, 12.0), p.health - 1.0), 2)
        if dmg > 0:
            self._hit(p, p, t, -1, "Damage_Instant_Fall", "NonSpecific", dmg, "PlayerMale_A_C")

    # --- the end -----------------------------------------------------------------------------

    def _rank(self) -> None:
        """Rankings by time of death, known only once the match is over: the first to die is
        last. A victim's `ranking` is its team's rank when its death ended the team, else 0."""
        n = len(self.players)
        for i, (_, p, victim, _) in enumerate(sorted(self.deaths, key=lambda d: d[0])):
            p.individual_rank = victim["individualRanking"] = n - i
        gone = sorted((team for team in self.teams if team.eliminated_at < _INF),
                      key=lambda team: team.eliminated_at)
        for i, team in enumerate(gone):
            team.rank = len(self.teams) - i
        for t, p, victim, result in self.deaths:
            if t == p.team.eliminated_at:
                victim["ranking"] = result["rank"] = p.team.rank

    def _finish(self) -> list[Event]:
        t_end = self.t_end
        self._rank()
        self.out = [e for e in self.out if e[0] <= t_end]
        self._match_end(t_end)
        self.out.sort(key=lambda e: (e[0], e[1]))
        phase = self.zones.phase
        events: list[Event] = [self._definition()]
        for t, _, kind, body in self.out:
            body["common"] = {"isGame": phase(t)}
            body["_D"] = self.stamp(t)
            body["_T"] = kind
            events.append(body)
        return events

    def _definition(self) -> Event:
        mode = {1: "solo-fpp", 2: "duo-fpp"}.get(self.team_size, "squad-fpp")
        when = datetime.fromtimestamp(self.start_ms / 1000, UTC).strftime("%Y.%m.%d.%H")
        if self.kind == "custom":
            host = self.players[0].account_id.removeprefix("account.")
            match = f"match.bro.custom.{host}.steam.normal.eu.{when}.{self.match_id}"
        else:
            match = f"match.bro.{self.kind}.pc-2018-33.steam.{mode}.eu.{when}.{self.match_id}"
        return {"MatchId": match, "PingQuality": "", "_D": self.stamp(0.0317, 7),
                "_T": "LogMatchDefinition"}

    def _match_end(self, t_end: float) -> None:
        rng = self.rng
        wrappers = []
        for p in self.players:
            character = self.char(p)
            if p.died_at < _INF:
                character["location"] = {"x": 0, "y": 0, "z": 0}
            character.update(ranking=p.team.rank, individualRanking=p.individual_rank,
                             isInBlueZone=False, isInVehicle=False, zone=[])
            wrappers.append({"character": character, "primaryWeaponFirst": "",
                             "primaryWeaponSecond": "", "secondaryWeapon": "", "spawnKitIndex": 0})
        winners = [team for team in self.teams if team.eliminated_at == _INF]
        results = [{"rank": 1, "gameResult": "", "teamId": p.team.team_id,
                    "stats": _stats(p.kills, p.foot_m, p.ride_m, p.chute_m, p.fall_m),
                    "accountId": p.account_id, "isRewardAbuse": False}
                   for team in winners for p in team.members]
        weapons = [{"accountId": p.account_id, "stats": [{
            "weapon": p.gun.causer, "damage": round(p.damage, 2), "dBNODamage": 0,
            "shots": p.shots, "hits": p.hits, "dBNOHits": 0,
            "holdingTime": round(min(p.died_at, t_end) - min(p.landed_at, t_end)),
            "hitDetails": []}]} for p in self.players if p.shots]
        self.emit(t_end, "LogMatchEnd", {"characters": wrappers,
                                         "gameResultOnFinished": {"results": results},
                                         "allWeaponStats": weapons})
        for p in self.players:
            t = p.died_at + rng.uniform(3.0, 40.0)
            if t >= t_end:
                t = t_end + rng.uniform(1.0, 15.0)
            self.emit(t, "LogPlayerLogout", {"accountId": p.account_id})
