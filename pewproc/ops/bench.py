"""`pewproc bench`: the end-to-end benchmark, from a generated corpus to a table, a JSON, a chart.

Four kinds of figure, each measured on the same files in the same run:

- the floor: what reading a match cannot avoid, `gzip.decompress` + `orjson.loads`, in a fresh
  child per file, median of several warm runs, CPU (`time.process_time`) and wall;
- the child's cost per stage (read, decompress, parse, extract, write/commit), in a fresh child
  per file that runs `Processor.process` once (cold), then the same functions the Processor calls,
  timed one by one, then `Processor.process` again (warm);
- peak resident memory (`ru_maxrss`) of that child after its first match, against a child that
  only parses the same file;
- end-to-end throughput through the real broker and database: a real worker process per mode
  (`PROCESSING_MODE=sequential`, and each `WORKER_POOL_SIZE` asked for), a warm-up batch, then the
  corpus, timed from the first publish to the last settlement read off the worker's JSON log;
  and, through the same worker, the cost of one message when the match is tiny.

Everything it creates is its own: queues under `ENVIRONMENT=bench-<random>`, a schema of its own
(dropped at the end unless kept), a corpus under a temporary folder inside --out.

`bench` takes every setting as an option (`pewproc.ops.options`), like every command.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import click
import orjson

from pewproc.ops.jsonlog import JsonLog
from pewproc.ops.options import ALL_GROUPS, settings_options
from pewproc.settings import Settings

STAGES = ("read", "decompress", "parse", "extract", "write")
PARTS = (*STAGES, "free")  # free: dropping the match's objects once written
GZIP_MAGIC = b"\x1f\x8b"
MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    key: str
    description: str
    op: str  # "<=" or ">="
    bound: float

    def status(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        ok = value <= self.bound if self.op == "<=" else value >= self.bound
        return "met" if ok else "not met"


TARGETS = (
    Target("cpu_vs_floor", "total CPU per match in the child / floor (decompress + loads)",
           "<=", 1.5),
    Target("extract_vs_parse", "extract CPU / parse CPU, in the child", "<=", 0.3),
    Target("rss_vs_parse_only", "child peak RSS / parse-only child peak RSS", "<=", 1.3),
    Target("pool2_vs_sequential", "throughput WORKER_POOL_SIZE=2 / sequential", ">=", 1.7),
)


class BenchError(click.ClickException):
    """The benchmark could not measure what it set out to (a worker failed, a match failed...)."""


# --- The command -----------------------------------------------------------------------------


def _pool_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(dict.fromkeys(int(p) for p in value.split(",") if p.strip()))
    except ValueError:
        raise click.BadParameter("a comma-separated list of whole numbers, e.g. 1,2") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("needs at least one pool size, each >= 1")
    return sizes


@click.command("bench")
@click.argument("files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--matches", default=10, show_default=True,
              help="Generated matches in the corpus (besides FILES).")
@click.option("--players", default=100, show_default=True, help="Players per generated match.")
@click.option("--team-size", default=4, show_default=True, help="Players per team.")
@click.option("--duration", default=1800.0, show_default=True,
              help="Length of a generated match, seconds.")
@click.option("--seed", default=1, show_default=True, help="Seed of the first generated match.")
@click.option("--pool-sizes", default="1,2", show_default=True, callback=_pool_sizes,
              help="WORKER_POOL_SIZE values to run end to end, besides sequential mode.")
@click.option("--repeats", default=3, show_default=True,
              help="End-to-end runs per mode (interleaved); figures are their medians.")
@click.option("--warmup", default=2, show_default=True,
              help="Matches processed before timing, per worker (at least the pool size).")
@click.option("--tiny-matches", default=100, show_default=True,
              help="Tiny matches (2 players, 60 s) per run, to measure the cost of one message.")
@click.option("--floor-runs", default=5, show_default=True,
              help="Warm runs of decompress + orjson.loads per file; the median counts.")
@click.option("--stage-runs", default=3, show_default=True,
              help="Warm, timed runs of the child's stages per file; the median counts.")
@click.option("--stage-files", default=0, show_default=True,
              help="Measure floor, stages and memory on this many generated files (0: all).")
@click.option("--e2e/--no-e2e", default=True, show_default=True,
              help="Run the end-to-end part (needs RabbitMQ); --no-e2e needs only PostgreSQL.")
@click.option("--out", "out_dir", default="bench-out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for bench.json, bench.png, worker logs and the corpus.")
@click.option("--bench-schema", default="",
              help="PostgreSQL schema to use (default: pewproc_bench_<random>, its own).")
@click.option("--keep-schema", is_flag=True, help="Keep the bench schema and its rows.")
@click.option("--keep-corpus", is_flag=True, help="Keep the generated corpus under --out.")
@click.option("--timeout", default=600.0, show_default=True,
              help="Longest wait for one batch of messages to be settled, seconds.")
@settings_options(*ALL_GROUPS)
def bench(settings: Settings, files: tuple[Path, ...], matches: int, players: int,
          team_size: int, duration: float, seed: int, pool_sizes: tuple[int, ...], repeats: int,
          warmup: int, tiny_matches: int, floor_runs: int, stage_runs: int, stage_files: int,
          e2e: bool, out_dir: Path, bench_schema: str, keep_schema: bool, keep_corpus: bool,
          timeout: float) -> None:
    """Benchmark processing: floor, per-stage CPU, memory, end-to-end throughput.

    Writes OUT/bench.json (every figure), OUT/bench.png (with matplotlib, the `bench` extra) and
    prints a table. Needs RabbitMQ and PostgreSQL as configured by the settings below; touches
    only queues and a schema of its own.
    """
    if matches < 0 or repeats < 1 or min(floor_runs, stage_runs) < 1 or tiny_matches < 1:
        raise click.UsageError("need --matches >= 0 and --repeats, --floor-runs, --stage-runs, "
                               "--tiny-matches >= 1")
    if matches == 0 and not files:
        raise click.UsageError("nothing to measure: give FILES or --matches >= 1")
    suffix = uuid.uuid4().hex[:8]
    schema = bench_schema or f"pewproc_bench_{suffix}"
    if not schema.isidentifier():
        raise click.UsageError(f"--bench-schema must be an identifier: {schema!r}")
    if schema == settings.postgres_schema:
        raise click.UsageError(f"--bench-schema {schema} is POSTGRES_SCHEMA, the schema workers "
                               "use: the bench truncates its tables; name another")
    config = Config(
        files=files, matches=matches, players=players, team_size=team_size, duration=duration,
        seed=seed, pool_sizes=pool_sizes, repeats=repeats, warmup=warmup,
        tiny_matches=tiny_matches, floor_runs=floor_runs, stage_runs=stage_runs,
        stage_files=stage_files, e2e=e2e, out_dir=out_dir, schema=schema,
        keep_schema=keep_schema, keep_corpus=keep_corpus, timeout=timeout, suffix=suffix,
    )
    report = Bench(settings, config).run()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    click.echo(render_table(report))
    click.echo(f"wrote {out_dir / 'bench.json'}")
    note = write_chart(report, out_dir / "bench.png")
    click.echo(note)
    if report["errors"]:
        raise BenchError("; ".join(report["errors"]))


@dataclass(frozen=True, kw_only=True)
class Config:
    files: tuple[Path, ...]
    matches: int
    players: int
    team_size: int
    duration: float
    seed: int
    pool_sizes: tuple[int, ...]
    repeats: int
    warmup: int
    tiny_matches: int
    floor_runs: int
    stage_runs: int
    stage_files: int
    e2e: bool
    out_dir: Path
    schema: str
    keep_schema: bool
    keep_corpus: bool
    timeout: float
    suffix: str


# --- The corpus ------------------------------------------------------------------------------


@dataclass
class CorpusFile:
    label: str
    kind: str  # generated | real | tiny
    path: Path  # absolute, inside TELEMETRY_ROOT
    file_bytes: int
    events: int = 0  # counted by the parse-only child


def build_corpus(root: Path, config: Config) -> list[CorpusFile]:
    """Generated matches (seeded, like real ones in size) plus copies of the real FILES."""
    from pewproc.telemetry.synth import generate_match, match_id_for, write_match

    corpus = []
    for match_seed in range(config.seed, config.seed + config.matches):
        path = root / "generated" / f"matchID={match_id_for(match_seed)}" / "raw.json.gz"
        events = generate_match(match_seed, players=config.players, team_size=config.team_size,
                                duration_s=config.duration)
        size = write_match(path, events)
        corpus.append(CorpusFile(f"gen-{match_seed}", "generated", path, size, len(events)))
    for i, source in enumerate(config.files):
        path = root / "real" / f"{i}-{source.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        corpus.append(CorpusFile(source.name.split(".", 1)[0], "real", path,
                                 path.stat().st_size))
    return corpus


def build_tiny(root: Path, count: int, seed: int) -> list[CorpusFile]:
    """Tiny matches (2 players, 60 s, about a hundred events) for the cost of one message."""
    from pewproc.telemetry.synth import generate_match, write_match

    tiny = []
    for i in range(count):
        events = generate_match(seed + i, players=2, team_size=1, duration_s=60.0)
        path = root / "tiny" / f"tiny-{i}.json.gz"
        tiny.append(CorpusFile(f"tiny-{i}", "tiny", path, write_match(path, events),
                               len(events)))
    return tiny


# --- Children: floor, stages, memory ---------------------------------------------------------


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _floor_once(raw: bytes, collect: bool = True) -> tuple[dict[str, float], Any]:
    """decompress + loads once; with `collect` False, the cyclic GC is off during loads."""
    c0, w0 = time.process_time(), time.perf_counter()
    data = raw
    while data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    c1, w1 = time.process_time(), time.perf_counter()
    if not collect:
        gc.disable()
    try:
        events = orjson.loads(data)
    finally:
        gc.enable()
    c2, w2 = time.process_time(), time.perf_counter()
    return {"decompress_cpu_s": c1 - c0, "parse_cpu_s": c2 - c1, "cpu_s": c2 - c0,
            "decompress_wall_s": w1 - w0, "parse_wall_s": w2 - w1, "wall_s": w2 - w0,
            "json_bytes": len(data)}, events


def parse_only_child(path: str, runs: int) -> dict[str, Any]:
    """In a fresh child: the floor (median of `runs` warm runs) and the peak RSS of one parse;
    also loads with the cyclic GC off, to show what collections cost while parsing."""
    import pewproc.processing  # noqa: F401 - the same modules as the processing child

    baseline = _maxrss_bytes()
    raw = Path(path).read_bytes()
    first, events = _floor_once(raw)
    peak = _maxrss_bytes()
    count = len(events)
    del events
    samples, no_gc = [], []
    for _ in range(runs):
        sample, events = _floor_once(raw)
        del events
        samples.append(sample)
        sample, events = _floor_once(raw, collect=False)
        del events
        no_gc.append(sample)
    floor = {k: statistics.median(s[k] for s in samples) for k in samples[0] if k != "json_bytes"}
    floor["parse_gc_off_cpu_s"] = statistics.median(s["parse_cpu_s"] for s in no_gc)
    floor["cpu_gc_off_s"] = statistics.median(s["cpu_s"] for s in no_gc)
    return {"floor": floor, "floor_cold": first, "events": count, "file_bytes": len(raw),
            "json_bytes": first["json_bytes"], "rss_baseline_bytes": baseline,
            "rss_peak_bytes": peak}


def stages_child(settings: Settings, path: str, match_id: str, runs: int) -> dict[str, Any]:
    """In a fresh child: `Processor.process` cold, the stages timed `runs` times, then warm."""
    from pewproc.message import MatchMessage
    from pewproc.processing import Processor

    baseline = _maxrss_bytes()
    processor = Processor(settings)
    try:
        cold = processor.process(
            MatchMessage(match_id=f"{match_id}~cold", file_path=path).to_json(), 1)
        if cold.outcome != "completed":
            raise RuntimeError(f"{path}: {cold.outcome}: {cold.reason}: {cold.error}")
        peak_first = _maxrss_bytes()
        samples = [_timed_stages(processor, path, f"{match_id}~{i}") for i in range(runs)]
        warm = processor.process(
            MatchMessage(match_id=f"{match_id}~warm", file_path=path).to_json(), 1)
    finally:
        processor.close()
    cpu, wall, gc_cpu = ({k: statistics.median(s[part][k] for s in samples)
                          for k in samples[0][part]} for part in ("cpu_s", "wall_s", "gc_cpu_s"))
    server = [s["write_server_cpu_s"] for s in samples if s["write_server_cpu_s"] is not None]
    return {
        "cpu_s": cpu, "wall_s": wall, "gc_cpu_s": gc_cpu,
        "gc_collections": samples[-1]["gc_collections"],
        "write_server_cpu_s": statistics.median(server) if server else None,
        "rows": sum(cold.rows.values()),
        "processor": {"cold_cpu_s": cold.cpu_seconds, "cold_stages_s": cold.stages,
                      "warm_cpu_s": warm.cpu_seconds, "warm_stages_s": warm.stages},
        "rss_baseline_bytes": baseline, "rss_peak_bytes": peak_first,
        "rss_peak_after_all_bytes": _maxrss_bytes(),
    }


def _timed_stages(processor: Any, file_path: str, match_id: str) -> dict[str, Any]:
    """What `Processor._process` does, with CPU and wall time taken around each function, and
    the time of the cyclic GC's collections charged to the stage they interrupted."""
    settings, limits = processor.settings, processor.limits
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    gc_cpu = dict.fromkeys(PARTS, 0.0)
    collections = {0: 0, 1: 0, 2: 0}
    stage = ["read"]
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:  # the cyclic GC's time, per stage
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_cpu[stage[0]] += time.process_time() - gc_start[0]
            collections[info["generation"]] += 1

    c_start, w_start = time.process_time(), time.perf_counter()
    marks = [(c_start, w_start)]

    def lap(done: str, following: str = "free") -> None:
        c, w = time.process_time(), time.perf_counter()
        cpu[done], wall[done] = c - marks[-1][0], w - marks[-1][1]
        marks.append((c, w))
        stage[0] = following

    from pewproc.processing import garbage_collector_paused

    gc.callbacks.append(on_gc)
    try:
        with garbage_collector_paused():  # as Processor.process runs
            server_cpu = _stages_once(processor, settings, limits, file_path, match_id, lap,
                                      w_start)
    finally:
        gc.callbacks.remove(on_gc)
    cpu["total"] = time.process_time() - c_start
    wall["total"] = time.perf_counter() - w_start
    cpu["other"] = max(0.0, cpu["total"] - sum(cpu[s] for s in PARTS))
    wall["other"] = max(0.0, wall["total"] - sum(wall[s] for s in PARTS))
    gc_cpu["total"] = sum(gc_cpu.values())
    return {"cpu_s": cpu, "wall_s": wall, "gc_cpu_s": gc_cpu, "gc_collections": collections,
            "write_server_cpu_s": server_cpu}


def _stages_once(processor: Any, settings: Settings, limits: Any, file_path: str, match_id: str,
                 lap: Callable[..., None], w_start: float) -> float | None:
    from pewproc.storage.writer import store_match
    from pewproc.telemetry.collectors.match import match_kind_of
    from pewproc.telemetry.extract import extract
    from pewproc.telemetry.model import MatchContext
    from pewproc.telemetry.reader import decompress, parse_events, resolve_inside
    from pewproc.telemetry.version import EXTRACTOR_VERSION

    path = resolve_inside(file_path, settings.telemetry_root)
    path.stat()
    raw = path.read_bytes()
    lap("read", "decompress")
    data = decompress(raw, limits.max_json_bytes)
    lap("decompress", "parse")
    events = parse_events(data, limits.max_events)
    del raw, data  # read_telemetry drops them when it returns
    lap("parse", "extract")
    kind = match_kind_of(events)
    extraction = extract(events, MatchContext(match_id,
                                              processor.tracked.current(processor.db.connection)))
    lap("extract", "write")
    fields = {"file_path": file_path, "attempt": 1, "worker_id": settings.worker_name,
              "match_kind": kind, "map_name": None, "game_mode": None, "error_reason": None,
              "error": None, "event_count": len(events),
              **{k: v for k, v in extraction.summary.items() if v is not None},
              "status": "completed", "processing_s": time.perf_counter() - w_start,
              "extractor_version": EXTRACTOR_VERSION}
    with processor.db.connection() as conn:
        server0 = _backend_cpu(conn)
        store_match(conn, match_id, fields, processor.tables, extraction.tables)
        server1 = _backend_cpu(conn)
    lap("write", "free")
    del events, extraction, fields  # what returning from Processor._process does
    lap("free")
    return server1 - server0 if server0 is not None and server1 is not None else None


def _backend_cpu(conn: Any) -> float | None:
    """CPU seconds used so far by the connection's PostgreSQL backend, when it runs on this host
    (read from /proc; 10 ms resolution); None for a remote server."""
    host = conn.info.host or ""
    if not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
        return None
    pid = conn.info.backend_pid
    try:
        if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres"):
            return None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_fresh_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `function(*args)` in a new process, so its CPU time and peak RSS are its own.

    Forked from a fork server, like the worker's children: a spawned (exec'd) child's ru_maxrss
    starts at the peak of the parent it was forked from, which here has held a whole corpus.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("forkserver")) as executor:
        return executor.submit(function, *args).result()


# --- End to end --------------------------------------------------------------------------------


class WorkerProcess:
    """`python -m pewproc.parallel_worker` with its JSON log in a file, read as it grows."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pewproc.parallel_worker"],
                env={**os.environ, **settings.to_env()}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = JsonLog(log_path)

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.log.records

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.log.poll()
            if condition():
                return
            if self.process.poll() is not None:
                raise BenchError(f"the worker exited ({self.process.returncode}) while waiting "
                                 f"for {what}; log: {self.log_path}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"log: {self.log_path}\n{self.tail()}")
            time.sleep(0.02)

    def wait_consuming(self, timeout: float) -> None:
        self.wait_for(lambda: any(str(r.get("message", "")).startswith("consuming")
                                  for r in self.records), timeout, "the worker to consume")

    def settled(self, ids: set[str], timeout: float) -> list[dict[str, Any]]:
        """The per-match log records of `ids`, once every one of them is settled."""
        found: dict[str, dict[str, Any]] = {}

        def done() -> bool:
            for record in self.records:
                if record.get("match_id") in ids and "action" in record:
                    found.setdefault(record["match_id"], record)
            return len(found) == len(ids)

        self.wait_for(done, timeout, f"{len(ids)} messages to be settled")
        bad = [r for r in found.values() if r["action"] != "ack" or r["outcome"] != "completed"]
        if bad:
            r = bad[0]
            raise BenchError(f"{len(bad)} matches not completed, e.g. {r['match_id']}: "
                             f"{r['outcome']} -> {r['action']} ({r.get('reason')}); "
                             f"log: {self.log_path}")
        return list(found.values())

    def stop(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def publish_batch(settings: Settings, messages: Sequence[tuple[str, Path]]) -> float:
    """Publish one message per (match id, file) with confirms; returns time.time() of the first."""
    from pewproc.broker.connection import connect
    from pewproc.broker.publisher import ConfirmingPublisher
    from pewproc.broker.topology import declare_topology
    from pewproc.message import MatchMessage

    connection = connect(settings)
    try:
        declare_topology(connection, settings)
        publisher = ConfirmingPublisher(connection)
        bodies = [MatchMessage(match_id=m, file_path=str(p), environment=settings.environment,
                               queue_target=settings.work_queue).to_json() for m, p in messages]
        first = time.time()
        for body in bodies:
            publisher.publish(settings.work_queue, body)
        return first
    finally:
        connection.close()


def _record_time(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["time"]).timestamp()


def batch_figures(records: list[dict[str, Any]], first_publish: float,
                  events: int) -> dict[str, Any]:
    """Throughput of one timed batch, from its settlement records."""
    wall = max(_record_time(r) for r in records) - first_publish
    busy = sum(r["ended_at"] - r["started_at"] for r in records)
    work = [r["stages"].get("total", 0.0) for r in records]
    return {
        "messages": len(records), "events": events, "wall_s": wall,
        "matches_per_s": len(records) / wall, "events_per_s": events / wall,
        "ms_per_message": 1000 * wall / len(records),
        "latency_median_s": statistics.median(r["seconds"] for r in records),
        "work_median_s": statistics.median(work),
        # received -> settled, less the time in Processor.process: hand-off, pickling, ack
        "overhead_median_ms": 1000 * statistics.median(
            max(0.0, r["seconds"] - w) for r, w in zip(records, work, strict=True)),
        "concurrency": busy / wall,  # children busy at once, on average
        "pids": len({r["pid"] for r in records}),
    }


# --- The run -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, settings: Settings, config: Config) -> None:
        self.config = config
        self.errors: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="corpus-", dir=_mkdir(config.out_dir))).resolve()
        self.settings = settings.replace(
            environment=f"bench-{config.suffix}", postgres_schema=config.schema,
            telemetry_root=str(self.root), match_kinds="*", log_format="json",
            log_level="INFO", metrics_port=0, worker_id=f"pewproc-bench-{config.suffix}",
        )
        self.worker: WorkerProcess | None = None

    def run(self) -> dict[str, Any]:
        import psycopg

        from pewproc.storage.migrate import migrate

        config, started = self.config, time.time()
        load_before = os.getloadavg()
        cpus = len(os.sched_getaffinity(0))
        if load_before[0] > cpus / 2:
            _say(f"note: load average {load_before[0]:.1f} on {cpus} CPUs: something else is "
                 "running, wall times and throughput will be noisy (CPU times much less so)")
        try:
            _say(f"schema {config.schema}: migrating")
            try:
                migrate(self.settings.conninfo, config.schema)
            except psycopg.OperationalError as exc:
                raise BenchError(f"cannot reach PostgreSQL: {exc}") from None
            if config.e2e:
                self._check_broker()
            _say(f"corpus: generating {config.matches} matches of {config.players} players "
                 f"under {self.root}")
            corpus = build_corpus(self.root, config)
            files = self._measure_files(corpus)
            e2e: dict[str, Any] = {}
            if config.e2e and self.errors:
                self.errors.append("end to end skipped: a file of the corpus failed above")
            elif config.e2e:
                try:
                    e2e = self._end_to_end(corpus)
                except BenchError as exc:
                    self.errors.append(exc.message)
                except Exception as exc:  # the broker unreachable, most likely: keep the rest
                    self.errors.append(f"end to end: {type(exc).__name__}: {exc}")
        finally:
            self._clean_up()
        report = {
            "version": 1,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_s": time.time() - started,
            "machine": _machine(self.settings, load_before),
            "config": {**{k: v for k, v in vars(config).items() if k != "files"},
                       "files": [str(f) for f in config.files],
                       "environment": self.settings.environment},
            "corpus": {"files": len(corpus), "events": sum(f.events for f in corpus),
                       "file_bytes": sum(f.file_bytes for f in corpus)},
            "files": files,
            "summary": summarize(files),
            **e2e,
            "errors": self.errors,
        }
        report["targets"] = evaluate_targets(report)
        return report

    def _measure_files(self, corpus: list[CorpusFile]) -> list[dict[str, Any]]:
        limit = self.config.stage_files
        generated = [f for f in corpus if f.kind == "generated"]
        chosen = (generated[:limit] if limit else generated) + [
            f for f in corpus if f.kind == "real"]
        results = []
        for n, item in enumerate(chosen, 1):
            try:
                _say(f"[{n}/{len(chosen)}] {item.label}: floor and parse-only memory")
                parse = in_fresh_child(parse_only_child, str(item.path), self.config.floor_runs)
                item.events = parse["events"]
                _say(f"[{n}/{len(chosen)}] {item.label}: stages in a child "
                     f"({parse['events']} events)")
                child = in_fresh_child(stages_child, self.settings, str(item.path),
                                       f"stage-{self.config.suffix}-{item.label}",
                                       self.config.stage_runs)
            except Exception as exc:  # one bad file must not lose the other figures
                self.errors.append(f"{item.label}: {type(exc).__name__}: {exc}")
                continue
            results.append(file_figures(item, parse, child))
        return results

    def _end_to_end(self, corpus: list[CorpusFile]) -> dict[str, Any]:
        config = self.config
        tiny = build_tiny(self.root, config.tiny_matches, config.seed + 100_000)
        modes = [("sequential", 0), *((f"pool-{p}", p) for p in config.pool_sizes)]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in modes}
        for repeat in range(1, config.repeats + 1):
            for name, pool_size in modes:  # interleaved, so drift on a shared machine spreads
                _say(f"end to end: {name}, run {repeat}/{config.repeats}")
                runs[name].append(self._run_mode(name, pool_size, repeat, corpus, tiny))
        throughput = {}
        for name, mode_runs in runs.items():
            median = {k: statistics.median(r["corpus"][k] for r in mode_runs)
                      for k in ("wall_s", "matches_per_s", "events_per_s", "latency_median_s",
                                "concurrency")}
            throughput[name] = {"runs": mode_runs, "median": median,
                                "matches_per_s_min": min(r["corpus"]["matches_per_s"]
                                                         for r in mode_runs),
                                "matches_per_s_max": max(r["corpus"]["matches_per_s"]
                                                         for r in mode_runs)}
        base = throughput["sequential"]["median"]["matches_per_s"]
        ratios = {str(p): throughput[f"pool-{p}"]["median"]["matches_per_s"] / base
                  for p in config.pool_sizes}
        dispatch = {name: {k: statistics.median(r["tiny"][k] for r in mode_runs)
                           for k in ("ms_per_message", "overhead_median_ms", "work_median_s",
                                     "matches_per_s")}
                    for name, mode_runs in runs.items()}
        return {"throughput": {"modes": throughput, "ratios_vs_sequential": ratios},
                "dispatch": {"tiny_events": statistics.median(f.events for f in tiny),
                             "modes": dispatch}}

    def _run_mode(self, name: str, pool_size: int, repeat: int, corpus: list[CorpusFile],
                  tiny: list[CorpusFile]) -> dict[str, Any]:
        config = self.config
        settings = self.settings.replace(
            processing_mode="sequential" if pool_size == 0 else "parallel",
            worker_pool_size=pool_size or self.settings.worker_pool_size,
        )
        tag = f"{name}-r{repeat}"
        log_path = self.config.out_dir / f"worker-{tag}.log"
        load = os.getloadavg()[0]
        self.worker = worker = WorkerProcess(settings, log_path)
        try:
            worker.wait_consuming(120.0)
            warm = [(f"{tag}-warmup-{i}", corpus[i % len(corpus)].path)
                    for i in range(max(config.warmup, pool_size, 1))]
            publish_batch(settings, warm)
            worker.settled({m for m, _ in warm}, config.timeout)
            self._truncate()
            result = {}
            for part, files in (("corpus", corpus), ("tiny", tiny)):
                batch = [(f"{tag}-{part}-{i}", f.path) for i, f in enumerate(files)]
                first = publish_batch(settings, batch)
                records = worker.settled({m for m, _ in batch}, config.timeout)
                result[part] = batch_figures(records, first, sum(f.events for f in files))
                self._check_completed([m for m, _ in batch])
            exit_code = worker.stop(settings.shutdown_timeout + 30)
        finally:
            worker.kill()
            self.worker = None
        if exit_code != 0:
            self.errors.append(f"worker {tag} exited with {exit_code} on SIGTERM ({log_path})")
        return {**result, "repeat": repeat, "exit_code": exit_code, "loadavg_1m": load,
                "log": str(log_path)}

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.settings.conninfo, autocommit=True)

    def _truncate(self) -> None:
        from psycopg import sql

        from pewproc.telemetry.extract import output_tables

        names = ["matches", *(t.name for t in output_tables())]
        with self._connect() as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(sql.Identifier(self.config.schema, n) for n in names)))

    def _check_completed(self, match_ids: list[str]) -> None:
        from psycopg import sql

        with self._connect() as conn:
            done = conn.execute(sql.SQL(
                "SELECT count(*) FROM {} WHERE match_id = ANY(%s) AND status = 'completed'"
            ).format(sql.Identifier(self.config.schema, "matches")), (match_ids,)).fetchone()
        if not done or done[0] != len(match_ids):
            raise BenchError(f"the matches table has {done[0] if done else 0} of "
                             f"{len(match_ids)} matches completed after their acks")

    def _clean_up(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        with contextlib.suppress(Exception):
            self._delete_queues()
        if not self.config.keep_schema:
            from psycopg import sql

            try:
                with self._connect() as conn:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(self.config.schema)))
            except Exception as exc:
                self.errors.append(f"could not drop schema {self.config.schema}: {exc}")
        if not self.config.keep_corpus:
            shutil.rmtree(self.root, ignore_errors=True)

    def _check_broker(self) -> None:
        import pika.exceptions

        from pewproc.broker.connection import connect, describe

        try:
            connect(self.settings).close()
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BenchError(f"cannot reach RabbitMQ at {describe(self.settings)} "
                             f"({type(exc).__name__}: {exc}); --no-e2e skips the end-to-end "
                             "part") from None

    def _delete_queues(self) -> None:
        if not self.config.e2e:
            return
        from pewproc.broker.connection import connect
        from pewproc.broker.topology import delete_topology

        connection = connect(self.settings)
        try:
            delete_topology(connection, self.settings)
        finally:
            connection.close()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _say(text: str) -> None:
    click.echo(f"bench: {text}", err=True)


def _machine(settings: Settings, load_before: tuple[float, float, float]) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    server = None
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(settings.conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            server = row[0] if row else None
    return {
        "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model, "memory_bytes": memory, "python": platform.python_version(),
        "platform": platform.platform(), "postgresql": server,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }


# --- Figures -------------------------------------------------------------------------------------


def file_figures(item: CorpusFile, parse: dict[str, Any], child: dict[str, Any]
                 ) -> dict[str, Any]:
    floor, cpu = parse["floor"], child["cpu_s"]
    return {
        "label": item.label, "kind": item.kind, "events": parse["events"],
        "file_bytes": parse["file_bytes"], "json_bytes": parse["json_bytes"],
        "rows": child["rows"], "floor": floor, "child": child,
        "ratios": {
            "cpu_vs_floor": cpu["total"] / floor["cpu_s"],
            "extract_vs_parse": cpu["extract"] / cpu["parse"],
            "rss_vs_parse_only": child["rss_peak_bytes"] / parse["rss_peak_bytes"],
        },
        "rss_parse_only_peak_bytes": parse["rss_peak_bytes"],
        "rss_parse_only_baseline_bytes": parse["rss_baseline_bytes"],
    }


def summarize(files: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures over all measured files: sums for CPU (so big matches weigh as they cost), the
    worst file for memory."""
    if not files:
        return {}
    cpu = {k: sum(f["child"]["cpu_s"][k] for f in files) for k in (*PARTS, "other", "total")}
    gc_cpu = {k: sum(f["child"]["gc_cpu_s"][k] for f in files) for k in (*PARTS, "total")}
    floor = {k: sum(f["floor"][k] for f in files)
             for k in ("decompress_cpu_s", "parse_cpu_s", "cpu_s", "parse_gc_off_cpu_s",
                       "cpu_gc_off_s")}
    n = len(files)
    return {
        "files": n,
        "events_per_match": sum(f["events"] for f in files) / n,
        "cpu_per_match_s": {k: v / n for k, v in cpu.items()},
        "gc_cpu_per_match_s": {k: v / n for k, v in gc_cpu.items()},
        "gc_share": gc_cpu["total"] / cpu["total"],
        "floor_per_match_s": {k: v / n for k, v in floor.items()},
        "cpu_vs_floor": cpu["total"] / floor["cpu_s"],
        "extract_vs_parse": cpu["extract"] / cpu["parse"],
        "rss_vs_parse_only": max(f["ratios"]["rss_vs_parse_only"] for f in files),
        "rss_child_peak_bytes": max(f["child"]["rss_peak_bytes"] for f in files),
        "rss_parse_only_peak_bytes": max(f["rss_parse_only_peak_bytes"] for f in files),
        "worst_cpu_vs_floor": max(f["ratios"]["cpu_vs_floor"] for f in files),
        "worst_extract_vs_parse": max(f["ratios"]["extract_vs_parse"] for f in files),
    }


def evaluate_targets(report: dict[str, Any]) -> dict[str, Any]:
    summary = report.get("summary") or {}
    ratios = (report.get("throughput") or {}).get("ratios_vs_sequential") or {}
    values = {
        "cpu_vs_floor": summary.get("cpu_vs_floor"),
        "extract_vs_parse": summary.get("extract_vs_parse"),
        "rss_vs_parse_only": summary.get("rss_vs_parse_only"),
        "pool2_vs_sequential": ratios.get("2"),
    }
    return {t.key: {"description": t.description, "value": values[t.key], "op": t.op,
                    "target": t.bound, "status": t.status(values[t.key])} for t in TARGETS}


# --- Output ---------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def render_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [f"pewproc bench: {m['cpus_usable']} CPUs ({m['cpu_model']}), "
           f"{m['memory_bytes'] / 2**30:.0f} GiB, Python {m['python']}, PostgreSQL "
           f"{m['postgresql']}; load {m['loadavg_before'][0]:.1f} -> "
           f"{m['loadavg_after'][0]:.1f}", ""]
    out.append("CPU per match in a child, ms (warm, median of runs); floor = gzip.decompress + "
               "orjson.loads")
    rows = []
    for f in report["files"]:
        c, fl = f["child"]["cpu_s"], f["floor"]
        rows.append([f["label"], f["events"], _ms(fl["cpu_s"]), *(_ms(c[s]) for s in PARTS),
                     _ms(c["other"]), _ms(c["total"]), _ms(f["child"]["gc_cpu_s"]["total"]),
                     f"{f['ratios']['cpu_vs_floor']:.2f}",
                     f"{f['ratios']['extract_vs_parse']:.2f}",
                     f"{f['child']['rss_peak_bytes'] / MB:.0f}/"
                     f"{f['rss_parse_only_peak_bytes'] / MB:.0f}",
                     _ms(f["child"]["write_server_cpu_s"])])
    out += _table(["file", "events", "floor", *PARTS, "other", "total", "of which gc",
                   "x floor", "extr/parse", "RSS MB child/parse", "pg write"], rows)
    summary = report["summary"]
    if summary:
        gc_cpu, floor = summary["gc_cpu_per_match_s"], summary["floor_per_match_s"]
        total = summary["cpu_per_match_s"]["total"]
        out.append(f"cyclic GC: {_ms(gc_cpu['total'])} of {_ms(total)} ms per match in the child "
                   f"({100 * summary['gc_share']:.0f}%; parse {_ms(gc_cpu['parse'])}, extract "
                   f"{_ms(gc_cpu['extract'])}); the floor's loads: {_ms(floor['parse_cpu_s'])} "
                   f"ms, {_ms(floor['parse_gc_off_cpu_s'])} ms with GC off")
    if "throughput" in report:
        out += ["", "End to end through RabbitMQ and PostgreSQL (median of runs)"]
        modes = report["throughput"]["modes"]
        ratios = report["throughput"]["ratios_vs_sequential"]
        rows = []
        for name, mode in modes.items():
            med, tiny = mode["median"], report["dispatch"]["modes"][name]
            ratio = ratios.get(name.removeprefix("pool-"), 1.0 if name == "sequential" else None)
            rows.append([name, f"{med['matches_per_s']:.2f}", f"{med['events_per_s']:,.0f}",
                         f"{med['wall_s']:.2f}", f"{med['latency_median_s']:.3f}",
                         f"{med['concurrency']:.2f}", f"{ratio:.2f}",
                         f"{tiny['ms_per_message']:.1f}", f"{tiny['overhead_median_ms']:.2f}"])
        out += _table(["mode", "matches/s", "events/s", "wall s", "latency s", "busy",
                       "x seq", "tiny ms/msg", "hand-off ms"], rows)
    out += ["", "Targets"]
    out += _table(["figure", "value", "target", "status"], [
        [t["description"], "-" if t["value"] is None else f"{t['value']:.2f}x",
         f"{t['op']} {t['target']}x", t["status"]] for t in report["targets"].values()])
    if report["errors"]:
        out += ["", "errors:", *(f"  {e}" for e in report["errors"])]
    return "\n".join(out)


def write_chart(report: dict[str, Any], path: Path) -> str:
    """bench.png: throughput by mode, CPU per stage against the floor, peak memory."""
    try:
        import matplotlib
    except ImportError:
        return ("note: matplotlib is not installed, so no bench.png "
                "(pip install 'pewproc[bench]')")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = report["files"]
    panels = 3 if "throughput" in report else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 5), constrained_layout=True)
    axes = list(axes)
    if "throughput" in report:
        ax = axes.pop(0)
        modes = report["throughput"]["modes"]
        names = list(modes)
        values = [modes[n]["median"]["matches_per_s"] for n in names]
        low = [v - modes[n]["matches_per_s_min"] for n, v in zip(names, values, strict=True)]
        high = [modes[n]["matches_per_s_max"] - v for n, v in zip(names, values, strict=True)]
        bars = ax.bar(names, values, yerr=[low, high], capsize=4, color="#4c72b0")
        for bar, value, up in zip(bars, values, high, strict=True):
            ax.annotate(f"{value:.2f}\n({value / values[0]:.2f}x)",
                        (bar.get_x() + bar.get_width() / 2, value + up), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
        ax.margins(y=0.15)
        ax.set_ylabel("matches per second (median; bars: min-max)")
        ax.set_title("End-to-end throughput")
    ax = axes.pop(0)
    groups = _chart_groups(files)
    colours = ("#8172b3", "#c44e52", "#dd8452", "#55a868", "#4c72b0", "#64b5cd", "#999999")
    for i, (_label, fs) in enumerate(groups):
        per10k = 10_000 / sum(f["events"] for f in fs)
        bottom = 0.0
        for stage, colour in zip((*PARTS, "other"), colours, strict=True):
            value = 1000 * per10k * sum(f["child"]["cpu_s"][stage] for f in fs)
            ax.bar(i - 0.2, value, 0.38, bottom=bottom, color=colour,
                   label=stage if i == 0 else None)
            bottom += value
        floor_bottom = 0.0
        for key, hatch in (("decompress_cpu_s", "//"), ("parse_cpu_s", "..")):
            value = 1000 * per10k * sum(f["floor"][key] for f in fs)
            ax.bar(i + 0.2, value, 0.38, bottom=floor_bottom, color="white", edgecolor="black",
                   hatch=hatch, label=f"floor: {key.split('_')[0]}" if i == 0 else None)
            floor_bottom += value
        ax.plot([i - 0.4, i + 0.4], [1.5 * floor_bottom] * 2, "k--", linewidth=1,
                label="1.5x floor (target)" if i == 0 else None)
        ax.annotate(f"{bottom / floor_bottom:.2f}x", (i - 0.2, bottom), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("CPU ms per 10,000 events (left: child, right: floor)")
    ax.set_title("CPU per stage in a child vs the floor")
    ax.legend(fontsize=7)
    ax = axes.pop(0)
    for i, (_label, fs) in enumerate(groups):
        child = max(f["child"]["rss_peak_bytes"] for f in fs) / MB
        parse = max(f["rss_parse_only_peak_bytes"] for f in fs) / MB
        ax.bar(i - 0.2, child, 0.38, color="#4c72b0", label="child" if i == 0 else None)
        ax.bar(i + 0.2, parse, 0.38, color="#bbbbbb", label="parse only" if i == 0 else None)
        baseline = max(f["child"]["rss_baseline_bytes"] for f in fs) / MB
        ax.plot([i - 0.4, i + 0.4], [baseline] * 2, "k:", linewidth=1,
                label="after imports, before any match" if i == 0 else None)
        ax.annotate(f"{child / parse:.2f}x", (i - 0.2, child), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("peak RSS, MiB (worst file of the group)")
    ax.set_title("Peak memory: child vs parse-only child")
    ax.legend(fontsize=7)
    fig.suptitle(f"pewproc bench, {report['machine']['cpus_usable']} CPUs, "
                 f"{report['started_at'][:16]}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def _chart_groups(files: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    generated = [f for f in files if f["kind"] == "generated"]
    groups = [(f"generated\n({len(generated)} files)", generated)] if generated else []
    return groups + [(f["label"][:20], [f]) for f in files if f["kind"] != "generated"]


__all__ = ["TARGETS", "bench"]
