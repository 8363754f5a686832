"""Collectors, one per table family. Order matters twice: `Lives` comes first, so that every
other handler of an event sees who is dead after it; `MatchSummary` finishes first, so that
every other `finish` sees the settled roster."""

from pewproc.telemetry.collectors.circle import CirclePositions
from pewproc.telemetry.collectors.damage import DamageEvents
from pewproc.telemetry.collectors.fights import Fights
from pewproc.telemetry.collectors.kills import Kills
from pewproc.telemetry.collectors.knocks import Knocks
from pewproc.telemetry.collectors.landings import Landings
from pewproc.telemetry.collectors.lives import Lives
from pewproc.telemetry.collectors.match import MatchSummary
from pewproc.telemetry.collectors.players import PlayerStats

COLLECTORS = (
    Lives,
    MatchSummary,
    Landings,
    Kills,
    Knocks,
    DamageEvents,
    Fights,
    PlayerStats,
    CirclePositions,
)

__all__ = ["COLLECTORS"]
