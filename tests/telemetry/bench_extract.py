"""Extraction cost against parsing, per collector: `python -m tests.telemetry.bench_extract [FILE]`.

Each run parses the decompressed file (orjson.loads) and extracts from the events just parsed,
as the worker does, so both see the same machine and the same caches. Totals are CPU time
(time.process_time: the machine is shared, wall time is not ours) and medians over the runs.

The per-collector split runs each collector alone over the parsed events, also in CPU time
(timing each handler call instead would cost more than most handlers: process_time takes
~0.6 us), less the same loop without handlers. What no collector accounts for (extract's
dispatch loop and game-event count) is the `extract()` total less the split's sum, which cache
effects can shrink below nothing (see `split`).

Without FILE it reads the real match beside the repository (PEWPROC_SHARED_DIR, as the tests
do); with `--synth SEED` it generates a full-size match instead.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections import defaultdict
from pathlib import Path

import orjson

from pewproc.telemetry.collectors import COLLECTORS
from pewproc.telemetry.extract import extract
from pewproc.telemetry.model import MatchContext
from pewproc.telemetry.synth import KILL_LAYOUTS, generate_match
from tests.conftest import REAL_MATCH_NAME, SHARED_DIR


def _alone(cls: type, events: list[dict], ctx: MatchContext) -> float:
    """CPU seconds of one pass calling only `cls`'s handlers, then its finish and summary."""
    clock = time.process_time
    before = clock()
    collector = cls(ctx)
    route = collector.handlers().get
    for event in events:
        handler = route(event.get("_T"))  # type: ignore[arg-type]
        if handler is not None:
            handler(event)
    collector.finish()
    collector.summary()
    return clock() - before


def _bare(events: list[dict]) -> float:
    """CPU seconds of the same loop with no handlers: what `_alone` subtracts."""
    clock = time.process_time
    before = clock()
    route: dict[str, object] = {}
    for event in events:
        handler = route.get(event.get("_T"))  # type: ignore[arg-type]
        if handler is not None:
            pass
    return clock() - before


def split(events: list[dict], runs: int, tracked: frozenset[str] | None) -> dict[str, float]:
    """Median CPU seconds of each collector run alone over the events, less the bare loop.

    Collectors other than MatchSummary see the roster a full pass leaves in the context, as
    their `finish` would. Alone, a collector pays every cache miss of the events it reads, which
    in `extract()` the first collector to read an event pays for all: the figures add up to a
    little more than the total.
    """
    roster = MatchContext("bench", tracked)
    extract(events, roster)
    spent: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        bare = _bare(events)
        for cls in COLLECTORS:
            ctx = MatchContext("bench", tracked)
            if cls.__name__ != "MatchSummary":
                ctx.players = dict(roster.players)
            spent[cls.__name__].append(_alone(cls, events, ctx) - bare)
    return {name: statistics.median(s) for name, s in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path,
                        default=SHARED_DIR / "telemetry" / REAL_MATCH_NAME)
    parser.add_argument("--synth", type=int, metavar="SEED")
    parser.add_argument("--layout", choices=KILL_LAYOUTS, default="v2",
                        help="kill layout of the synthetic match")
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--no-split", action="store_true", help="totals only")
    parser.add_argument("--untracked", action="store_true",
                        help="TRACKED_PLAYERS empty: no damage_events or circle_positions rows")
    args = parser.parse_args()
    if args.synth is not None:
        raw = orjson.dumps(generate_match(args.synth, kill_layout=args.layout))
        label = f"synthetic match, seed {args.synth}, layout {args.layout}"
    else:
        raw = gzip.decompress(args.file.read_bytes())
        label = args.file.name
    tracked: frozenset[str] | None = frozenset() if args.untracked else None
    clock = time.process_time
    parse, total = [], []
    for _ in range(args.runs):
        before = clock()
        events = orjson.loads(raw)
        parse.append(clock() - before)
        before = clock()
        extract(events, MatchContext("bench", tracked))  # the events just parsed, as in the worker
        total.append(clock() - before)
        del events  # freeing them is neither parse nor extraction
    events = orjson.loads(raw)
    p, x = statistics.median(parse), statistics.median(total)
    print(f"{label}: {len(events)} events, {len(raw) / 1e6:.1f} MB of JSON, {args.runs} runs"
          + (", nobody tracked" if args.untracked else ""))
    print(f"orjson.loads  {p * 1e3:8.2f} ms   (fastest run {min(parse) * 1e3:.2f} ms)")
    print(f"extract()     {x * 1e3:8.2f} ms   (fastest run {min(total) * 1e3:.2f} ms)"
          f"   {x / p:.3f}x parse (fastest runs: {min(total) / min(parse):.3f}x)")
    if args.no_split:
        return
    by_collector = split(events, args.runs, tracked)
    for name, seconds in sorted(by_collector.items(), key=lambda kv: -kv[1]):
        print(f"  {name:16s}{seconds * 1e3:8.2f} ms   {seconds / p:.3f}x")
    alone = sum(by_collector.values())
    print(f"  {'(sum alone)':16s}{alone * 1e3:8.2f} ms   {alone / p:.3f}x;"
          f" extract() less that: {(x - alone) * 1e3:.2f} ms (dispatch, count; shared misses)")


if __name__ == "__main__":
    main()
