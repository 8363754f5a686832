"""`pewproc bench` on a tiny corpus, through the test broker and database.

Figures are only checked to exist and be positive: timings are printed by the bench, never
asserted against thresholds here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pika.exceptions
import psycopg
import pytest
from click.testing import CliRunner

from pewproc.broker.connection import connect
from pewproc.ops.bench import STAGES, TARGETS, bench
from pewproc.ops.bench.report import evaluate_targets
from pewproc.settings import Settings

FILE_FIGURES = [
    *(f"floor.{k}" for k in ("decompress_cpu_s", "parse_cpu_s", "cpu_s", "decompress_wall_s",
                             "parse_wall_s", "wall_s")),
    *(f"child.cpu_s.{s}" for s in (*STAGES, "total")),
    *(f"child.wall_s.{s}" for s in (*STAGES, "total")),
    "child.processor.cold_cpu_s", "child.processor.warm_cpu_s",
    "child.rss_baseline_bytes", "child.rss_peak_bytes", "child.rss_peak_after_all_bytes",
    "rss_parse_only_peak_bytes", "rss_parse_only_baseline_bytes",
    "ratios.cpu_vs_floor", "ratios.cpu_vs_floor_gc_on", "ratios.extract_vs_parse",
    "ratios.rss_vs_parse_only", "ratios.rss_match_vs_parse_only", "floor.cpu_gc_off_s",
    "floor.parse_gc_off_cpu_s",
    "events", "file_bytes", "json_bytes", "rows",
]
SUMMARY_FIGURES = [
    "events_per_match", "cpu_vs_floor", "cpu_vs_floor_gc_on", "extract_vs_parse",
    "rss_vs_parse_only", "rss_match_vs_parse_only",
    "rss_child_peak_bytes", "rss_parse_only_peak_bytes", "floor_per_match_s.cpu_s",
    *(f"cpu_per_match_s.{s}" for s in (*STAGES, "total")),
]
MODE_FIGURES = ["median.wall_s", "median.matches_per_s", "median.events_per_s",
                "median.latency_median_s", "median.concurrency"]
RUN_FIGURES = [f"{part}.{k}" for part in ("corpus", "tiny")
               for k in ("wall_s", "matches_per_s", "events_per_s", "ms_per_message",
                         "latency_median_s", "work_median_s", "overhead_median_ms")]
DISPATCH_FIGURES = ["ms_per_message", "overhead_median_ms", "work_median_s", "matches_per_s"]


def figure(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data


def assert_positive(data: dict[str, Any], keys: list[str], where: str) -> None:
    bad = {k: figure(data, k) for k in keys
           if not isinstance(figure(data, k), int | float) or figure(data, k) <= 0}
    assert not bad, f"{where}: figures missing or not positive: {bad}"


def queue_exists(settings: Settings, queue: str) -> bool:
    connection = connect(settings)
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.slow
def test_bench_reports_every_figure_for_a_tiny_corpus(settings: Settings, tmp_path: Path) -> None:
    # Given a tiny corpus, one pool size and one run, with the test broker and database
    out = tmp_path / "bench-out"
    args = ["--matches", "2", "--players", "8", "--team-size", "2", "--duration", "300",
            "--pool-sizes", "1", "--repeats", "1", "--warmup", "1", "--tiny-matches", "5",
            "--floor-runs", "2", "--stage-runs", "1", "--out", str(out)]

    # When the bench runs, configured from the environment like every pewproc command
    result = CliRunner().invoke(bench, args, env=settings.to_env(), catch_exceptions=False)

    # Then it succeeded and printed the table
    assert result.exit_code == 0, result.output
    assert "Targets" in result.output
    report = json.loads((out / "bench.json").read_text())
    assert report["errors"] == []

    # And bench.json has every figure, each a positive number
    assert [f["label"] for f in report["files"]] == ["gen-1", "gen-2"]
    for item in report["files"]:
        assert_positive(item, FILE_FIGURES, item["label"])
    assert_positive(report["summary"], SUMMARY_FIGURES, "summary")
    modes = report["throughput"]["modes"]
    assert list(modes) == ["sequential", "pool-1"]
    for name, mode in modes.items():
        assert_positive(mode, MODE_FIGURES, name)
        assert [run["exit_code"] for run in mode["runs"]] == [0]
        assert_positive(mode["runs"][0], RUN_FIGURES, f"{name} run")
        assert mode["runs"][0]["corpus"]["messages"] == 2
        assert mode["runs"][0]["tiny"]["messages"] == 5
        assert_positive(report["dispatch"]["modes"][name], DISPATCH_FIGURES, f"{name} tiny")
    assert report["throughput"]["ratios_vs_sequential"]["1"] > 0

    # And every file took the typed decoding path, as generated files do, and the bench says so
    assert [f["child"]["decode_path"] for f in report["files"]] == ["typed", "typed"]
    assert report["summary"]["fallback_files"] == 0 and report["summary"]["fallback_share"] == 0
    assert "0 of 2 files took the general decoding path" in result.output
    assert "above the modules both import first" in result.output
    assert all(r["corpus"]["fallbacks"] == 0 for mode in modes.values() for r in mode["runs"])

    # And every performance target is reported; pool=2 was not run, so those are not measured
    targets = report["targets"]
    assert set(targets) == {t.key for t in TARGETS}
    for key in ("cpu_vs_floor", "rss_vs_parse_only"):
        assert targets[key]["value"] > 0
        assert targets[key]["status"] in ("met", "not met")
    for key in ("pool2_vs_sequential", "pool2_vs_parse_limit"):
        assert targets[key]["status"] == "not measured"

    # And the chart is drawn when matplotlib is there
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed" in result.output

    # And the bench left nothing behind: its schema, queues and corpus are gone
    schema, environment = report["config"]["schema"], report["config"]["environment"]
    with psycopg.connect(settings.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                            (schema,)).fetchone() == (0,)
    assert not queue_exists(settings, f"match.processing.{environment}")
    assert not list(out.glob("corpus-*"))


def test_targets_are_judged_against_the_parse_only_limit_of_the_machine() -> None:
    # Given a run on 2 CPUs whose mean match has a floor of 100 ms with the GC paused
    report: dict[str, Any] = {
        "machine": {"cpus_usable": 2},
        "summary": {"floor_per_match_s": {"cpu_gc_off_s": 0.1}, "cpu_vs_floor": 1.1,
                    "rss_vs_parse_only": 0.5},
        "throughput": {"ratios_vs_sequential": {"2": 1.8},
                       "modes": {"pool-2": {"median": {"matches_per_s": 9.0}}}},
    }

    # When the targets are judged
    targets = evaluate_targets(report)

    # Then pool 2's 9 matches/s are 0.45 of the 20 the CPUs could parse, and each ratio is
    # held to its bound
    assert targets["pool2_vs_parse_limit"]["value"] == pytest.approx(0.45)
    assert {k: t["status"] for k, t in targets.items()} == {
        "cpu_vs_floor": "not met", "rss_vs_parse_only": "met", "pool2_vs_sequential": "met",
        "pool2_vs_parse_limit": "not met"}
