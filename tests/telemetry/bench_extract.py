"""Extraction cost against parsing, per collector: `python -m tests.telemetry.bench_extract [FILE]`.

Each run parses the decompressed file (orjson.loads) and extracts from the events just parsed,
as the worker does, so both see the same machine and the same caches. Totals are CPU time
(time.process_time: the machine is shared, wall time is not ours) and medians over the runs.

The per-collector split comes from a copy of extract's dispatch loop that times every handler
call and every `finish` with perf_counter (process_time costs ~0.6 us a call, more than most
handlers), less the timer's own cost; each figure is the median over the runs. What the split
does not cover (the dispatch loop itself, the game-event count, collections) is shown as
"dispatch + rest": the plain `extract()` total less the split's sum.

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


def split(events: list[dict], runs: int, tracked: frozenset[str] | None) -> dict[str, float]:
    """Median seconds each collector spends in its handlers and its finish."""
    clock = time.perf_counter
    start = clock()
    for _ in range(10_000):
        clock()
    tick = (clock() - start) / 10_000
    spent: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        ctx = MatchContext("bench", tracked)
        collectors = [cls(ctx) for cls in COLLECTORS]
        dispatch = defaultdict(list)
        for collector in collectors:
            for event_type, handler in collector.handlers().items():
                dispatch[event_type].append((type(collector).__name__, handler))
        this_run: dict[str, float] = dict.fromkeys((c.__name__ for c in COLLECTORS), 0.0)
        for event in events:
            for name, handler in dispatch.get(event.get("_T"), ()):  # type: ignore[arg-type]
                before = clock()
                handler(event)
                this_run[name] += clock() - before - tick
        for collector in collectors:
            before = clock()
            collector.finish()
            collector.summary()
            this_run[type(collector).__name__] += clock() - before
        for name, seconds in this_run.items():
            spent[name].append(seconds)
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
    by_collector["dispatch + rest"] = max(0.0, x - sum(by_collector.values()))
    for name, seconds in sorted(by_collector.items(), key=lambda kv: -kv[1]):
        print(f"  {name:16s}{seconds * 1e3:8.2f} ms   {seconds / p:.3f}x")


if __name__ == "__main__":
    main()
