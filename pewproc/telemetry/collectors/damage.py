"""Every hit that touches a tracked player, as dealt or as taken.

Environmental damage (blue zone, falls, drowning) has no attacker; it is kept for its victim.
Hits on knocked players carry damage 0 in PUBG's files; they are kept, as PUBG counts them as hits.
PUBG gives no distance for plain hits; the positions of both sides are here instead. A shotgun
shot logs one hit per pellet with the same time, attack id and victim: `hit_seq` numbers them.
"""

from __future__ import annotations

from typing import Any

from pewproc.telemetry.collectors.common import Hit, Tracked
from pewproc.telemetry.model import (
    Collector,
    Handler,
    MatchContext,
    Row,
    parse_time,
    table,
    text,
)

DAMAGE_EVENTS = table(
    "damage_events",
    ("damaged_at", "timestamptz"),
    ("phase", "float8"),
    ("attack_id", "int8"),
    ("attacker_account_id", "text"),
    ("attacker_team_id", "int8"),
    ("attacker_x_m", "float8"),
    ("attacker_y_m", "float8"),
    ("attacker_z_m", "float8"),
    ("victim_account_id", "text"),
    ("victim_team_id", "int8"),
    ("victim_x_m", "float8"),
    ("victim_y_m", "float8"),
    ("victim_z_m", "float8"),
    ("victim_health", "float8"),
    ("damage", "float8"),
    ("damage_reason", "text"),
    ("damage_category", "text"),
    ("weapon", "text"),
    ("through_wall", "bool"),
    ("is_team_damage", "bool"),
    ("hit_seq", "int8"),  # last: added by a later migration
)
_NOBODY = (None,) * 5


class DamageEvents(Collector):
    tables = (DAMAGE_EVENTS,)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__(ctx)
        self.rows: list[Row] = []
        self.tracked = Tracked(ctx)
        self.hits_of: dict[tuple[Any, Any, Any], int] = {}  # (`_D`, attack id, victim) -> hits

    def handlers(self) -> dict[str, Handler]:
        return {"LogPlayerTakeDamage": self.on_damage}

    def on_damage(self, hit: Hit) -> None:
        # The hottest handler (a hit is a quarter of a match): the row is one flat tuple.
        event, at_phase, _, victim_c, attacker, victim = hit
        tracked = self.tracked
        if not (
            (victim is not None and tracked[victim[0]])
            or (attacker is not None and tracked[attacker[0]])
        ):
            return
        a_id, a_team, a_x, a_y, a_z = attacker or _NOBODY
        v_id, v_team, v_x, v_y, v_z = victim or _NOBODY
        when, attack_id = event._D, event.attackId
        key = (when, attack_id, v_id)
        seq = self.hits_of[key] = self.hits_of.get(key, 0) + 1
        self.rows.append(
            (
                self.ctx.match_id,
                parse_time(when),
                at_phase,
                attack_id,
                a_id, a_team, a_x, a_y, a_z,
                v_id, v_team, v_x, v_y, v_z,
                victim_c.health if victim_c else None,
                event.damage,
                text(event.damageReason),
                text(event.damageTypeCategory),
                text(event.damageCauserName),
                event.isThroughPenetrableWall,
                # is_teammate of the two, both present (a Body always has an account id)
                a_id is not None and v_id is not None and a_id != v_id
                and a_team is not None and a_team == v_team,
                seq,
            )
        )

    def finish(self) -> dict[str, list[Row]]:
        return {DAMAGE_EVENTS.name: self.rows}
