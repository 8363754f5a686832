"""One pass over a match's events, dispatching each event on `_T` to the collectors that want it.

Collectors are small objects that each own one table family (see `pewproc.telemetry.collectors`).
The pass touches every event once; a collector that needs the whole match first (knock outcomes,
fights) keeps the few events it needs and finishes in `finish`, never by scanning all events again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pewproc.telemetry.collectors import COLLECTORS
from pewproc.telemetry.collectors.common import DECODERS
from pewproc.telemetry.model import Event, Handler, MatchContext, Row, Table


@dataclass(frozen=True)
class Extraction:
    """Everything derived from one match: the match row's fields and the rows of each table."""

    summary: dict[str, Any]
    tables: dict[str, list[Row]]

    def row_counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}


def output_tables() -> tuple[Table, ...]:
    """Every table extraction fills, in the order they are written."""
    return tuple(t for cls in COLLECTORS for t in cls.tables)


def extract(events: list[Event], ctx: MatchContext) -> Extraction:
    collectors = [cls(ctx) for cls in COLLECTORS]
    handlers_of: dict[str, list[Handler]] = defaultdict(list)
    for collector in collectors:
        for event_type, handler in collector.handlers().items():
            handlers_of[event_type].append(handler)
    # event type -> (its decoder or None, its handlers): see collectors.common.DECODERS
    dispatch = {t: (DECODERS.get(t), handlers) for t, handlers in handlers_of.items()}

    route = dispatch.get
    game_events = 0
    for event in events:
        entry = route(event._T)  # type: ignore[arg-type]
        if entry is not None:
            decode, handlers = entry
            decoded = event if decode is None else decode(event)
            for handler in handlers:
                handler(decoded)
        common = event.common
        try:  # the usual event: a number there
            if common.isGame > 0:
                game_events += 1
        except (AttributeError, TypeError):  # none, null or odd: the general test (odd ones raise)
            if common is not None and (common.isGame or 0) > 0:
                game_events += 1

    summary: dict[str, Any] = {"event_count": len(events), "game_event_count": game_events}
    tables: dict[str, list[Row]] = {}
    for collector in collectors:
        tables.update(collector.finish())
        summary.update(collector.summary())
    return Extraction(summary, tables)
