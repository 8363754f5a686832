"""The `pewproc bench` command: options, checks, then a Bench run and its outputs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from pewproc.ops.bench.endtoend import BenchError
from pewproc.ops.bench.plot import write_chart
from pewproc.ops.bench.report import render_table
from pewproc.ops.bench.run import Bench, Config
from pewproc.ops.options import ALL_GROUPS, settings_options
from pewproc.settings import Settings


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

