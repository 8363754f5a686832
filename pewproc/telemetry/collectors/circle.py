"""Where tracked players stood relative to the circles, one row per position sample.

The current (blue, safe) circle and the next (white, poison-gas warning) one are those of the
latest LogGameStatePeriodic seen in the pass (~every 10 s). A zero radius means "no circle yet".
Samples on the plane and after (isGame > 0) are kept; lobby samples are not, and neither are
those PUBG logs for dead players (see `collectors.lives`).
"""

from __future__ import annotations

from math import hypot

from pewproc.telemetry.collectors.common import Sample, Tracked
from pewproc.telemetry.model import (
    CM_PER_M,
    Collector,
    Event,
    Handler,
    MatchContext,
    Row,
    parse_time,
    table,
)

Circle = tuple[float, float, float]  # centre x, centre y, radius, metres
_NO_CIRCLE = (None, None, None)

CIRCLE_POSITIONS = table(
    "circle_positions",
    ("account_id", "text"),
    ("team_id", "int8"),
    ("sampled_at", "timestamptz"),
    ("phase", "float8"),
    ("elapsed_s", "float8"),
    ("x_m", "float8"),
    ("y_m", "float8"),
    ("z_m", "float8"),
    ("zone_x_m", "float8"),
    ("zone_y_m", "float8"),
    ("zone_radius_m", "float8"),
    ("dist_centre_m", "float8"),
    ("dist_edge_m", "float8"),  # radius - distance to centre: negative outside
    ("is_outside", "bool"),
    ("next_x_m", "float8"),
    ("next_y_m", "float8"),
    ("next_radius_m", "float8"),
)


def _circle(position: Event | None, radius: float | None) -> Circle | None:
    if not position or not radius or radius <= 0:
        return None
    x, y = position.x, position.y
    if x is None or y is None:
        return None
    return x / CM_PER_M, y / CM_PER_M, radius / CM_PER_M


class SafeZone:
    """The circles as of the latest LogGameStatePeriodic; each collector that measures keeps one.

    A place is measured against `current` as (distance to its centre, radius less that distance:
    the distance to the edge, negative outside), in metres; the collectors do it inline, once
    per position sample.
    """

    __slots__ = ("current", "next")

    def __init__(self) -> None:
        self.current: Circle | None = None
        self.next: Circle | None = None

    def update(self, event: Event) -> None:
        state = event.gameState
        if state:
            self.current = _circle(state.safetyZonePosition, state.safetyZoneRadius)
            self.next = _circle(
                state.poisonGasWarningPosition, state.poisonGasWarningRadius
            )


class CirclePositions(Collector):
    tables = (CIRCLE_POSITIONS,)

    def __init__(self, ctx: MatchContext) -> None:
        super().__init__(ctx)
        self.zone = SafeZone()
        self.rows: list[Row] = []
        self.tracked = Tracked(ctx)

    def handlers(self) -> dict[str, Handler]:
        return {"LogGameStatePeriodic": self.zone.update, "LogPlayerPosition": self.on_position}

    def on_position(self, sample: Sample) -> None:
        # Once per position sample (a fifth of a match): the row is one flat tuple of locals.
        event, at_phase, character, who = sample
        if not at_phase or at_phase <= 0 or not character:
            return
        if who is None or not self.tracked[who[0]] or who[0] in self.ctx.dead:  # no corpses
            return
        account_id, team_id, x, y, z = who
        zone_x, zone_y, radius = self.zone.current or _NO_CIRCLE
        if zone_x is None or x is None or y is None:
            to_centre = to_edge = outside = None
        else:
            to_centre = hypot(x - zone_x, y - zone_y)
            to_edge = radius - to_centre
            outside = to_edge < 0
        next_x, next_y, next_radius = self.zone.next or _NO_CIRCLE
        elapsed = event.elapsedTime
        if elapsed.__class__ is not float and elapsed.__class__ is not int:
            elapsed = elapsed if isinstance(elapsed, (int, float)) else None
        self.rows.append(
            (
                self.ctx.match_id,
                account_id,
                team_id,
                parse_time(event._D),
                at_phase,
                elapsed,
                x,
                y,
                z,
                zone_x,
                zone_y,
                radius,
                to_centre,
                to_edge,
                outside,
                next_x,
                next_y,
                next_radius,
            )
        )

    def finish(self) -> dict[str, list[Row]]:
        return {CIRCLE_POSITIONS.name: self.rows}
