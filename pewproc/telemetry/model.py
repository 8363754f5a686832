"""The vocabulary of extraction: output tables, the per-match context, and readers of PUBG objects.

Telemetry speaks centimetres; every table speaks metres. A `null` value and a missing key are the
same thing here, because PUBG's own files carry `null` where third-party copies drop the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# An event or an object in it, read by attribute: a Struct of `telemetry.typed`, or on the
# general path a `telemetry.general.Fields`.
Event = Any
Row = tuple[Any, ...]
Handler = Callable[[Any], None]  # an Event, or a decoded one (see Collector)

CM_PER_M = 100.0


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # binary COPY type: text, int8, float8, bool, timestamptz; never int4 (writer.py)


@dataclass(frozen=True)
class Table:
    """An output table: its columns in COPY order. The first column is always `match_id`."""

    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def pg_types(self) -> tuple[str, ...]:
        return tuple(c.pg_type for c in self.columns)


def table(name: str, *columns: tuple[str, str]) -> Table:
    return Table(name, (Column("match_id", "text"), *(Column(n, t) for n, t in columns)))


@dataclass
class Player:
    account_id: str
    name: str | None
    team_id: int | None

    @property
    def is_bot(self) -> bool:
        return is_bot(self.account_id)


@dataclass
class MatchContext:
    """What every collector may know about the match besides its events."""

    match_id: str
    tracked: frozenset[str] | None = None  # account ids; None means every human player
    players: dict[str, Player] = field(default_factory=dict)  # filled during the pass
    # account id -> (team id, time of death) of each player dead at this point of the pass
    # (`collectors.lives`); at the end, of those dead when the match ended
    dead: dict[str, tuple[int | None, datetime | None]] = field(default_factory=dict)

    def is_tracked(self, account_id: str | None) -> bool:
        if not account_id or account_id.startswith("ai."):  # is_bot, inlined: a hot path
            return False
        return self.tracked is None or account_id in self.tracked

    def note_player(self, character: Event | None) -> None:
        if not character:
            return
        account_id = character.accountId
        if account_id and account_id not in self.players:
            self.players[account_id] = Player(
                account_id, character.name, character.teamId
            )


class Collector:
    """Owns one or a few output tables. Sees only the event types it names, once each, in order.

    `handlers` maps event types to bound methods, each called with the event (or, for the types
    in `collectors.common.DECODERS`, with the event as decoded once for all: a Hit, a Sample);
    `finish` runs after the single pass and returns the rows of each table it owns; `summary`
    adds fields to the match's own row.
    """

    tables: tuple[Table, ...] = ()

    def __init__(self, ctx: MatchContext) -> None:
        self.ctx = ctx

    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    def finish(self) -> dict[str, list[Row]]:
        return {}

    def summary(self) -> dict[str, Any]:
        return {}


# Readers of PUBG objects. Each tolerates a missing or null object.


def is_bot(account_id: str | None) -> bool:
    return bool(account_id) and account_id.startswith("ai.")  # type: ignore[union-attr]


_fromisoformat = datetime.fromisoformat


def parse_time(value: str | None) -> datetime | None:
    """`_D` timestamps: 3 to 7 fractional digits, `Z` or `+00:00`; None when absent or garbled."""
    if not value:
        return None
    try:
        return _fromisoformat(value)
    except (ValueError, TypeError):
        return None


def phase(event: Event) -> float | None:
    """`common.isGame` as a float. Called for most events: a float is returned as it is before
    the general test (isinstance of a union costs more than the rest of the function)."""
    common = event.common
    if not common:
        return None
    value = common.isGame
    if value.__class__ is float:
        return value  # type: ignore[no-any-return]
    return float(value) if isinstance(value, (int, float)) else None


def location_m(obj: Event | None) -> tuple[float | None, float | None, float | None]:
    """`location` of a character (or any object with one), in metres."""
    loc = obj.location if obj else None
    if not loc:
        return (None, None, None)
    x, y, z = loc.x, loc.y, loc.z
    return (
        x / CM_PER_M if x is not None else None,
        y / CM_PER_M if y is not None else None,
        z / CM_PER_M if z is not None else None,
    )


def health(character: Event | None) -> float | None:
    """A character's health, when PUBG logged a number for it."""
    value = character.health if character else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def cm_to_m(value: float | None) -> float | None:
    """A distance in centimetres as metres; PUBG's -1 (no distance) becomes None."""
    if value is None or value < 0:
        return None
    return value / CM_PER_M


def account(character: Event | None) -> str | None:
    return character.accountId if character else None


def name(character: Event | None) -> str | None:
    return character.name if character else None


def team(character: Event | None) -> int | None:
    return character.teamId if character else None


def zones(character: Event | None) -> str | None:
    """Place names a character is in, comma-joined (None when in none)."""
    places = character.zone if character else None
    return ",".join(places) if places else None


def text(value: Any) -> str | None:
    """Non-empty strings as they are; empty strings and PUBG's "None" placeholders become None."""
    if value.__class__ is str:  # the usual case, tested first: three columns of every hit
        return value if value and value != "None" else None
    if value is None or value == "" or value == "None":
        return None
    return str(value)
