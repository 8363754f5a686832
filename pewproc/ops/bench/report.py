"""Figures of a run: per file, summed, against the targets; and the table printed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pewproc.ops.bench.corpus import CorpusFile

STAGES = ("read", "decompress", "parse", "extract", "write")
PARTS = (*STAGES, "free")  # free: dropping the match's objects once written
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
    Target("cpu_vs_floor", "child CPU per match, read to commit / floor (gzip.decompress + "
           "orjson.loads, GC paused)", "<=", 1.0),
    Target("rss_vs_parse_only", "child peak RSS / parse-only child peak RSS", "<=", 0.6),
    Target("pool2_vs_sequential", "throughput WORKER_POOL_SIZE=2 / sequential", ">=", 1.7),
    Target("pool2_vs_parse_limit", "throughput WORKER_POOL_SIZE=2 / parse-only limit (CPUs / "
           "floor)", ">=", 0.5),
)


def file_figures(item: CorpusFile, parse: dict[str, Any], child: dict[str, Any]
                 ) -> dict[str, Any]:
    floor, cpu = parse["floor"], child["cpu_s"]
    return {
        "label": item.label, "kind": item.kind, "events": parse["events"],
        "file_bytes": parse["file_bytes"], "json_bytes": parse["json_bytes"],
        "rows": child["rows"], "floor": floor, "child": child,
        "ratios": {
            "cpu_vs_floor": cpu["total"] / floor["cpu_gc_off_s"],
            "cpu_vs_floor_gc_on": cpu["total"] / floor["cpu_s"],
            "extract_vs_parse": cpu["extract"] / cpu["parse"],
            "rss_vs_parse_only": child["rss_peak_bytes"] / parse["rss_peak_bytes"],
            # what the match itself costs: both children import the same modules first
            "rss_match_vs_parse_only": _above(child["rss_peak_bytes"], child["rss_baseline_bytes"])
            / _above(parse["rss_peak_bytes"], parse["rss_baseline_bytes"]),
        },
        "rss_parse_only_peak_bytes": parse["rss_peak_bytes"],
        "rss_parse_only_baseline_bytes": parse["rss_baseline_bytes"],
    }


def _above(peak: int, baseline: int) -> int:
    return max(peak - baseline, 1)  # a page at least: a ratio, never a division by zero


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
        "cpu_vs_floor": cpu["total"] / floor["cpu_gc_off_s"],
        "cpu_vs_floor_gc_on": cpu["total"] / floor["cpu_s"],
        "extract_vs_parse": cpu["extract"] / cpu["parse"],
        "fallback_files": sum(1 for f in files if f["child"].get("decode_path") == "general"),
        "fallback_share": sum(1 for f in files
                              if f["child"].get("decode_path") == "general") / n,
        "rss_vs_parse_only": max(f["ratios"]["rss_vs_parse_only"] for f in files),
        "rss_match_vs_parse_only": max(f["ratios"]["rss_match_vs_parse_only"] for f in files),
        "rss_child_peak_bytes": max(f["child"]["rss_peak_bytes"] for f in files),
        "rss_parse_only_peak_bytes": max(f["rss_parse_only_peak_bytes"] for f in files),
        "worst_cpu_vs_floor": max(f["ratios"]["cpu_vs_floor"] for f in files),
        "worst_extract_vs_parse": max(f["ratios"]["extract_vs_parse"] for f in files),
    }


def parse_limit(report: dict[str, Any]) -> float | None:
    """Matches per second the machine's CPUs could at best parse: CPUs / the floor (GC paused)
    of the mean match. A worker that does the whole job can only come within a fraction of it."""
    floor = ((report.get("summary") or {}).get("floor_per_match_s") or {}).get("cpu_gc_off_s")
    return report["machine"]["cpus_usable"] / floor if floor else None


def evaluate_targets(report: dict[str, Any]) -> dict[str, Any]:
    summary = report.get("summary") or {}
    throughput = report.get("throughput") or {}
    ratios = throughput.get("ratios_vs_sequential") or {}
    pool2 = (throughput.get("modes") or {}).get("pool-2")
    limit = parse_limit(report)
    values = {
        "cpu_vs_floor": summary.get("cpu_vs_floor"),
        "rss_vs_parse_only": summary.get("rss_vs_parse_only"),
        "pool2_vs_sequential": ratios.get("2"),
        "pool2_vs_parse_limit": (pool2["median"]["matches_per_s"] / limit
                                 if pool2 and limit else None),
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
               "orjson.loads, with the cyclic GC on / paused (x floor: against the paused one)")
    rows = []
    for f in report["files"]:
        c, fl = f["child"]["cpu_s"], f["floor"]
        rows.append([f["label"], f["events"], f"{_ms(fl['cpu_s'])}/{_ms(fl['cpu_gc_off_s'])}",
                     *(_ms(c[s]) for s in PARTS),
                     _ms(c["other"]), _ms(c["total"]), _ms(f["child"]["gc_cpu_s"]["total"]),
                     f"{f['ratios']['cpu_vs_floor']:.2f}",
                     f"{f['ratios']['extract_vs_parse']:.2f}",
                     f"{f['child']['rss_peak_bytes'] / MB:.0f}/"
                     f"{f['rss_parse_only_peak_bytes'] / MB:.0f}",
                     _ms(f["child"]["write_server_cpu_s"]), f["child"].get("decode_path", "-")])
    out += _table(["file", "events", "floor on/off", *PARTS, "other", "total", "of which gc",
                   "x floor", "extr/parse", "RSS MB child/parse", "pg write", "decoded"], rows)
    summary = report["summary"]
    if summary:
        gc_cpu, floor = summary["gc_cpu_per_match_s"], summary["floor_per_match_s"]
        total = summary["cpu_per_match_s"]["total"]
        out.append(f"cyclic GC: {_ms(gc_cpu['total'])} of {_ms(total)} ms per match in the child "
                   f"({100 * summary['gc_share']:.0f}%; parse {_ms(gc_cpu['parse'])}, extract "
                   f"{_ms(gc_cpu['extract'])}); the floor's loads: {_ms(floor['parse_cpu_s'])} "
                   f"ms, {_ms(floor['parse_gc_off_cpu_s'])} ms with GC off")
        out.append(f"per match: {_ms(total)} ms in the child = {summary['cpu_vs_floor']:.2f}x the "
                   f"floor with GC paused ({_ms(floor['cpu_gc_off_s'])} ms), "
                   f"{summary['cpu_vs_floor_gc_on']:.2f}x with GC on ({_ms(floor['cpu_s'])} ms); "
                   f"{summary['fallback_files']} of {summary['files']} files took the general "
                   "decoding path")
        out.append(f"peak memory, worst file: {summary['rss_vs_parse_only']:.2f}x the parse-only "
                   f"child's; above the modules both import first: "
                   f"{summary['rss_match_vs_parse_only']:.2f}x")
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
        limit = parse_limit(report)
        if limit:
            fallbacks = sum(r["corpus"].get("fallbacks", 0) for mode in modes.values()
                            for r in mode["runs"])
            out.append(f"parse-only limit: {limit:.2f} matches/s ({m['cpus_usable']} CPUs / the "
                       f"floor with GC paused); matches that took the general decoding path end "
                       f"to end: {fallbacks}")
    out += ["", "Targets"]
    out += _table(["figure", "value", "target", "status"], [
        [t["description"], "-" if t["value"] is None else f"{t['value']:.2f}x",
         f"{t['op']} {t['target']}x", t["status"]] for t in report["targets"].values()])
    if report["errors"]:
        out += ["", "errors:", *(f"  {e}" for e in report["errors"])]
    return "\n".join(out)

