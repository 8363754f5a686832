"""Every parachute landing, redeploys included, wherever in the match it happens.

Most landings happen on the plane phase (isGame 0.1), so nothing here filters by phase; the phase
is a column instead. PUBG logs the landing of an already landed player again when they are
knocked, at health 0 with the first landing's distance: a landing at health 0 is no landing.
"""

from __future__ import annotations

from pewproc.telemetry.general import Fields
from pewproc.telemetry.model import (
    Collector,
    Event,
    Handler,
    Row,
    health,
    is_bot,
    location_m,
    parse_time,
    phase,
    table,
)

LANDINGS = table(
    "landings",
    ("landing_seq", "int8"),
    ("account_id", "text"),
    ("player_name", "text"),
    ("team_id", "int8"),
    ("is_bot", "bool"),
    ("landed_at", "timestamptz"),
    ("phase", "float8"),
    ("x_m", "float8"),
    ("y_m", "float8"),
    ("z_m", "float8"),
    ("zone", "text"),
    ("parachute_distance", "float8"),
)


_NO_CHARACTER = Fields()  # every key absent


class Landings(Collector):
    tables = (LANDINGS,)

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.rows: list[Row] = []
        self.seen: dict[str | None, int] = {}  # account -> landings so far

    def handlers(self) -> dict[str, Handler]:
        return {"LogParachuteLanding": self.on_landing}

    def on_landing(self, event: Event) -> None:
        # model's one-key readers (account, name, team, zones) read in place: an absent
        # character reads as an empty one.
        character = event.character or _NO_CHARACTER
        now = health(character)
        if now is not None and now <= 0:
            return  # an echo: PUBG re-emits the landing of a landed player when they are knocked
        account_id = character.accountId
        seq = self.seen[account_id] = self.seen.get(account_id, 0) + 1
        places = character.zone
        self.rows.append(
            (
                self.ctx.match_id,
                seq,
                account_id,
                character.name,
                character.teamId,
                is_bot(account_id),
                parse_time(event._D),
                phase(event),
                *location_m(character),
                ",".join(places) if places else None,
                event.distance,
            )
        )

    def finish(self) -> dict[str, list[Row]]:
        return {LANDINGS.name: self.rows}
