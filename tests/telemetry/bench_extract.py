"""Extraction cost against parsing, per collector: `python -m tests.telemetry.bench_extract [FILE]`.

Each run parses the decompressed file (orjson.loads) and extracts from the events just parsed,
as the worker does, so both see the same machine and the same caches. Totals are CPU time
(time.process_time: the machine is shared, wall time is not ours) and medians over the runs,
twice: with the cyclic GC paused, as `Processor.process` runs a match, and with it on, where
collections walking the freshly parsed events cost loads more than half its time and land in
extraction at random (a full collection costs as much as the whole pass on a big match).

The per-collector split runs each collector alone over the parsed events, also in CPU time
(timing each handler call instead would cost more than most handlers: process_time takes
~0.6 us), less the same pass without it. The decoding that extract does once for all
collectors (collectors.common.DECODERS) is a line of its own, less the bare loop. What neither
accounts for (extract's dispatch loop and game-event count) is the `extract()` total less the
split's sum, which cache effects can shrink below nothing (see `split`).

Without FILE it reads the real match beside the repository (PEWPROC_SHARED_DIR, as the tests
do); with `--synth SEED` it generates a full-size match instead.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import time
from collections import defaultdict
from pathlib import Path

import orjson

from pewproc.telemetry.collectors import COLLECTORS
from pewproc.telemetry.collectors.common import DECODERS
from pewproc.telemetry.extract import extract
from pewproc.telemetry.model import MatchContext
from pewproc.telemetry.synth import KILL_LAYOUTS, generate_match
from tests.conftest import REAL_MATCH_NAME, SHARED_DIR


def _pass(events: list[dict], cls: type | None, ctx: MatchContext) -> float:
    """CPU seconds of one pass that decodes what extract decodes (once, for all collectors) and
    calls only `cls`'s handlers, then its finish and summary; with no `cls`, only the decoding."""
    clock = time.process_time
    before = clock()
    collector = cls(ctx) if cls is not None else None
    handlers = collector.handlers() if collector is not None else {}
    route = {t: (DECODERS.get(t), handlers.get(t)) for t in {*DECODERS, *handlers}}.get
    for event in events:
        entry = route(event.get("_T"))  # type: ignore[arg-type]
        if entry is not None:
            decode, handler = entry
            decoded = event if decode is None else decode(event)
            if handler is not None:
                handler(decoded)
    if collector is not None:
        collector.finish()
        collector.summary()
    return clock() - before


def _bare(events: list[dict]) -> float:
    """CPU seconds of the same loop with neither decoding nor handlers."""
    clock = time.process_time
    before = clock()
    route: dict[str, object] = {}
    for event in events:
        entry = route.get(event.get("_T"))  # type: ignore[arg-type]
        if entry is not None:
            pass
    return clock() - before


def split(events: list[dict], runs: int, tracked: frozenset[str] | None) -> dict[str, float]:
    """Median CPU seconds of each collector run alone over the events, less the same pass
    without it; and of the decoding extract shares between collectors, less the bare loop.

    Collectors other than MatchSummary see the roster a full pass leaves in the context, as
    their `finish` would. Alone, a collector pays every cache miss of the events it reads, which
    in `extract()` the first collector to read an event pays for all: the figures add up to a
    little more than the total.
    """
    roster = MatchContext("bench", tracked)
    extract(events, roster)
    spent: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        decoding = _pass(events, None, MatchContext("bench", tracked))
        spent["(shared decoding)"].append(decoding - _bare(events))
        for cls in COLLECTORS:
            ctx = MatchContext("bench", tracked)
            if cls.__name__ != "MatchSummary":
                ctx.players = dict(roster.players)
            spent[cls.__name__].append(_pass(events, cls, ctx) - decoding)
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
    parse: dict[bool, list[float]] = {True: [], False: []}  # GC paused -> samples
    total: dict[bool, list[float]] = {True: [], False: []}
    for run in range(2 * args.runs):
        paused = run % 2 == 0
        if paused:
            gc.disable()
        try:
            before = clock()
            events = orjson.loads(raw)
            parse[paused].append(clock() - before)
            before = clock()
            extract(events, MatchContext("bench", tracked))  # the events just parsed, as the worker
            total[paused].append(clock() - before)
            del events  # freeing them is neither parse nor extraction
        finally:
            gc.enable()
    events = orjson.loads(raw)
    print(f"{label}: {len(events)} events, {len(raw) / 1e6:.1f} MB of JSON, {args.runs} runs"
          + (", nobody tracked" if args.untracked else ""))
    for paused in (True, False):
        p, x = statistics.median(parse[paused]), statistics.median(total[paused])
        print(f"GC {'paused' if paused else 'on    '}  orjson.loads {p * 1e3:8.2f} ms   "
              f"extract() {x * 1e3:8.2f} ms   {x / p:.3f}x parse   (fastest runs: "
              f"{min(parse[paused]) * 1e3:.2f}, {min(total[paused]) * 1e3:.2f} ms)")
    p, x = statistics.median(parse[True]), statistics.median(total[True])
    if args.no_split:
        return
    gc.disable()  # as the worker runs, and collections would land on whichever collector
    try:
        by_collector = split(events, args.runs, tracked)
    finally:
        gc.enable()
    print("GC paused, each collector alone:")
    for name, seconds in sorted(by_collector.items(), key=lambda kv: -kv[1]):
        print(f"  {name:16s}{seconds * 1e3:8.2f} ms   {seconds / p:.3f}x")
    alone = sum(by_collector.values())
    print(f"  {'(sum alone)':16s}{alone * 1e3:8.2f} ms   {alone / p:.3f}x;"
          f" extract() less that: {(x - alone) * 1e3:.2f} ms (dispatch, count; shared misses)")


if __name__ == "__main__":
    main()
