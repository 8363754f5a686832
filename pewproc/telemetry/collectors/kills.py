"""One row per death: victim, knocker, finisher and killer, from either kill layout.

LogPlayerKillV2 (current files) names each role with its own damage info. LogPlayerKill (older
files) is flat: one killer and one damage info. For it the finisher is the killer, and the
knocker is recovered from the knock with the same dBNOId, which the pass has already seen. The
killer's damage columns always carry the cause of death, also for deaths with no killer
(`cause_of_death`).
"""

from __future__ import annotations

from typing import Any

from pewproc.telemetry.collectors.common import old_layout_assists
from pewproc.telemetry.model import (
    Collector,
    Event,
    Handler,
    Row,
    account,
    cm_to_m,
    is_bot,
    location_m,
    parse_time,
    phase,
    table,
    team,
    text,
)

_ROLE_COLUMNS = (
    ("account_id", "text"),
    ("name", "text"),
    ("team_id", "int8"),
    ("x_m", "float8"),
    ("y_m", "float8"),
    ("z_m", "float8"),
    ("zone", "text"),
)
_DAMAGE_COLUMNS = (
    ("reason", "text"),
    ("category", "text"),
    ("causer", "text"),
    ("distance_m", "float8"),
    ("through_wall", "bool"),
)


def _role(prefix: str, *, damage: bool) -> tuple[tuple[str, str], ...]:
    cols = _ROLE_COLUMNS + (_DAMAGE_COLUMNS if damage else ())
    return tuple((f"{prefix}_{n}", t) for n, t in cols)


KILLS = table(
    "kills",
    ("killed_at", "timestamptz"),
    ("phase", "float8"),
    ("layout", "text"),
    ("attack_id", "int8"),
    ("dbno_id", "int8"),
    *_role("victim", damage=False),
    ("victim_is_bot", "bool"),
    ("victim_weapon", "text"),
    *_role("knocker", damage=True),
    *_role("finisher", damage=True),
    *_role("killer", damage=True),
    ("killer_is_bot", "bool"),
    ("assists", "text"),
    ("is_team_kill", "bool"),
    ("is_suicide", "bool"),
)


_NO_ROLE = (None,) * len(_ROLE_COLUMNS)
_NO_DAMAGE = (None,) * len(_DAMAGE_COLUMNS)


def character_cells(character: Event | None) -> tuple[Any, ...]:
    """The role columns of a character; a character without an account id counts as absent.
    Read in place (four roles a kill, two a knock), not through model's one-key readers."""
    account_id = character.accountId if character else None
    if not account_id:
        return _NO_ROLE
    x, y, z = location_m(character)
    places = character.zone  # zones()
    return (account_id, character.name, character.teamId, x, y, z,
            ",".join(places) if places else None)


def damage_cells(info: Event | None) -> tuple[Any, ...]:
    """The damage columns of a damage info, or of an event that keeps those keys at its top level
    (LogPlayerKill, knocks)."""
    if not info:
        return _NO_DAMAGE
    return (
        text(info.damageReason),
        text(info.damageTypeCategory),
        text(info.damageCauserName),
        cm_to_m(info.distance),
        info.isThroughPenetrableWall,
    )


def cause_of_death(*infos: Event | None) -> Event | None:
    """The first damage info that names a damage category. A death with no killer (blue zone,
    fall) has an empty `killerDamageInfo` in the current layout; its cause is in
    `finishDamageInfo` and `dBNODamageInfo`, as it is in the old layout's flat keys."""
    for info in infos:
        if info and text(info.damageTypeCategory):
            return info
    return infos[0]


class Kills(Collector):
    tables = (KILLS,)

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.rows: list[Row] = []
        self.knocks: dict[int, Event] = {}  # dBNOId -> knock, for the old layout

    def handlers(self) -> dict[str, Handler]:
        return {
            "LogPlayerKillV2": self.on_kill_v2,
            "LogPlayerKill": self.on_kill_v1,
            "LogPlayerMakeGroggy": self.on_knock,
        }

    def on_knock(self, event: Event) -> None:
        dbno_id = event.dBNOId
        if dbno_id is not None and dbno_id != -1:
            self.knocks[dbno_id] = event

    def on_kill_v2(self, event: Event) -> None:
        victim, killer = event.victim, event.killer
        self._add(
            event,
            "v2",
            knocker=event.dBNOMaker,
            knock_info=event.dBNODamageInfo,
            finisher=event.finisher,
            finish_info=event.finishDamageInfo,
            killer=killer,
            kill_info=cause_of_death(event.killerDamageInfo, event.finishDamageInfo,
                                     event.dBNODamageInfo),
            assists=event.assists_AccountId or (),
            team_killers=event.teamKillers_AccountId or (),
            suicide=bool(event.isSuicide)
            or (account(killer) is not None and account(killer) == account(victim)),
        )

    def on_kill_v1(self, event: Event) -> None:
        victim, killer = event.victim, event.killer
        knock = self.knocks.get(event.dBNOId)  # type: ignore[arg-type]
        self._add(
            event,
            "v1",
            knocker=knock.attacker if knock else None,
            knock_info=knock,  # the damage keys are flat in both events
            finisher=killer,
            finish_info=event,
            killer=killer,
            kill_info=event,
            assists=old_layout_assists(event),
            team_killers=(),
            suicide=account(killer) is not None and account(killer) == account(victim),
        )

    def _add(self, event: Event, layout: str, *, knocker: Event | None, knock_info: Event | None,
             finisher: Event | None, finish_info: Event | None, killer: Event | None,
             kill_info: Event | None, assists: Any, team_killers: Any, suicide: bool) -> None:
        victim = event.victim
        victim_id, killer_id = account(victim), account(killer) or None
        killer_team = team(killer)
        team_kill = bool(killer_id and killer_id in team_killers) or (
            not suicide
            and killer_id is not None
            and killer_team is not None
            and killer_team == team(victim)
        )
        self.rows.append(
            (
                self.ctx.match_id,
                parse_time(event._D),
                phase(event),
                layout,
                event.attackId,
                event.dBNOId,
                *character_cells(victim),
                is_bot(victim_id),
                text(event.victimWeapon),
                *character_cells(knocker),
                *(damage_cells(knock_info) if knocker and account(knocker) else _NO_DAMAGE),
                *character_cells(finisher),
                *(damage_cells(finish_info) if finisher and account(finisher) else _NO_DAMAGE),
                *character_cells(killer),
                *damage_cells(kill_info),
                is_bot(killer_id),
                ",".join(a for a in assists if a) or None,
                team_kill,
                suicide,
            )
        )

    def finish(self) -> dict[str, list[Row]]:
        return {KILLS.name: self.rows}
