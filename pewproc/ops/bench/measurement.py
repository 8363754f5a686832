"""Children that measure one file each: the floor, the stages of processing, peak memory."""

from __future__ import annotations

import gc
import gzip
import os
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from pewproc.ops.bench.report import PARTS
from pewproc.settings import Settings

GZIP_MAGIC = b"\x1f\x8b"


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
        "decode_path": cold.decode_path,
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
    events, _ = parse_events(data, limits.max_events)
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

