"""Every parachute landing, redeploys included, wherever in the match it happens.

Most landings happen on the plane phase (isGame 0.1), so nothing here filters by phase; the phase
is a column instead.
"""

from __future__ import annotations

from collections import Counter

from pewproc.telemetry.model import (
    Collector,
    Event,
    Handler,
    Row,
    account,
    is_bot,
    location_m,
    name,
    parse_time,
    phase,
    table,
    team,
    zones,
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


class Landings(Collector):
    tables = (LANDINGS,)

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.rows: list[Row] = []
        self.seen: Counter[str | None] = Counter()

    def handlers(self) -> dict[str, Handler]:
        return {"LogParachuteLanding": self.on_landing}

    def on_landing(self, event: Event) -> None:
        character = event.get("character")
        account_id = account(character)
        self.seen[account_id] += 1
        self.rows.append(
            (
                self.ctx.match_id,
                self.seen[account_id],
                account_id,
                name(character),
                team(character),
                is_bot(account_id),
                parse_time(event.get("_D")),
                phase(event),
                *location_m(character),
                zones(character),
                event.get("distance"),
            )
        )

    def finish(self) -> dict[str, list[Row]]:
        return {LANDINGS.name: self.rows}
