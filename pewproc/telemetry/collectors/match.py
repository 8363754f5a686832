"""The match's own row: kind, map, mode, team size, times, and who took part."""

from __future__ import annotations

from typing import Any

from pewproc.telemetry.general import as_fields
from pewproc.telemetry.model import Collector, Event, Handler, Row, is_bot, parse_time, text


def parse_match_definition(match_id: str | None) -> tuple[str | None, str | None]:
    """(kind, mode) from LogMatchDefinition's MatchId.

    `match.bro.official.pc-2018-04.steam.duo-fpp.na.2019.10.03.05.<uuid>` gives
    ("official", "duo-fpp"); `match.bro.custom.<host>.steam.normal.na...` gives
    ("custom", "normal").
    """
    if not match_id:
        return None, None
    parts = match_id.split(".")
    if len(parts) < 6 or parts[0] != "match":
        return None, None
    return parts[2] or None, parts[5] or None


def match_kind_of(events: list[Event]) -> str | None:
    """The kind of match, from the LogMatchDefinition among the first events."""
    for event in events[:50]:
        if event._T == "LogMatchDefinition":
            return parse_match_definition(event.MatchId)[0]
    return None


def is_match(events: list[Event]) -> bool:
    """Whether the events are the telemetry of a match that took place: its definition and its
    start. Real files open with LogMatchDefinition and start within the first few thousand
    events, so this stops early; only a file that is no match is read to its end."""
    missing = set(_MATCH_MARKERS)
    for event in events:
        missing.discard(event._T)  # type: ignore[arg-type]
        if not missing:
            return True
    return False


_MATCH_MARKERS = frozenset({"LogMatchDefinition", "LogMatchStart"})


def _characters(event: Event) -> list[Event]:
    """LogMatchStart/End list plain characters (old files) or wrappers {character, ...} (new)."""
    out = []
    for item in as_fields(event.characters) or ():
        if item:
            inner = item.character
            out.append(inner if isinstance(inner, dict) else item)
    return out


class MatchSummary(Collector):
    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.fields: dict[str, Any] = {}
        self.start_characters: list[Event] = []
        self.teams_from_state: int | None = None
        self.created: list[Event] = []  # LogPlayerCreate characters: the roster without a start

    def handlers(self) -> dict[str, Handler]:
        return {
            "LogMatchDefinition": self.on_definition,
            "LogMatchStart": self.on_start,
            "LogMatchEnd": self.on_end,
            "LogPlayerCreate": self.on_create,
            "LogGameStatePeriodic": self.on_state,
        }

    def on_definition(self, event: Event) -> None:
        kind, mode = parse_match_definition(event.MatchId)
        self.fields["match_kind"] = kind
        self.fields["game_mode"] = mode

    def on_start(self, event: Event) -> None:
        self.fields["map_name"] = text(event.mapName)
        self.fields["team_size"] = event.teamSize
        self.fields["is_custom"] = event.isCustomGame
        self.fields["started_at"] = parse_time(event._D)
        self.start_characters = _characters(event)
        for character in self.start_characters:
            self.ctx.note_player(character)

    def on_end(self, event: Event) -> None:
        self.fields["ended_at"] = parse_time(event._D)
        for character in _characters(event):
            self.ctx.note_player(character)

    def on_create(self, event: Event) -> None:
        character = event.character
        if character:
            self.created.append(character)

    def on_state(self, event: Event) -> None:
        state = event.gameState
        teams = state.numStartTeams if state else None
        if teams and self.teams_from_state is None:
            self.teams_from_state = teams

    def finish(self) -> dict[str, list[Row]]:
        """Settle the roster before any other collector finishes: LogMatchStart's, else (files
        without one) LogPlayerCreate's. Players who log out in the lobby were created but never
        started the match, and are no player of it."""
        if not self.start_characters:
            for character in self.created:
                self.ctx.note_player(character)
        return {}

    def summary(self) -> dict[str, Any]:
        fields = dict(self.fields)
        started, ended = fields.get("started_at"), fields.get("ended_at")
        fields["duration_s"] = (ended - started).total_seconds() if started and ended else None
        players = self.ctx.players.values()
        fields["player_count"] = sum(1 for p in players if not is_bot(p.account_id))
        fields["bot_count"] = sum(1 for p in players if is_bot(p.account_id))
        teams = {p.team_id for p in players if p.team_id is not None}
        fields["team_count"] = len(teams) or self.teams_from_state
        return fields
