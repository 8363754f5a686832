"""Who is dead right now, for every collector that must not count a corpse.

PUBG keeps logging LogPlayerPosition for a dead player: health 0, frozen where they died. Those
samples are no player: not a teammate near a knock, not a place in the circle. A player is dead
from the kill that names them as victim (either layout) until a sample shows them with health
above 0 again (comeback modes bring players back).

This collector owns no table. It runs first (see `collectors.COLLECTORS`), so when another
collector's handler sees an event, `ctx.dead` already reflects it: a sample of a player in
`ctx.dead` is a corpse's.
"""

from __future__ import annotations

from pewproc.telemetry.collectors.common import Sample
from pewproc.telemetry.model import Collector, Event, Handler, health, parse_time


class Lives(Collector):
    def handlers(self) -> dict[str, Handler]:
        return {
            "LogPlayerKillV2": self.on_kill,
            "LogPlayerKill": self.on_kill,
            "LogPlayerPosition": self.on_position,
        }

    def on_kill(self, event: Event) -> None:
        victim = event.victim
        account_id = victim.accountId if victim else None
        if account_id:
            self.ctx.dead[account_id] = (victim.teamId,  # type: ignore[union-attr]
                                         parse_time(event._D))

    def on_position(self, sample: Sample) -> None:
        # Once per sample: one dict lookup unless the player is dead.
        who = sample[3]
        if who is not None and who[0] in self.ctx.dead:
            now = health(sample[2])
            if now is not None and now > 0:
                del self.ctx.dead[who[0]]
