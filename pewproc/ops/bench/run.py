"""A bench run: the corpus, each file's children, the end-to-end modes, the report."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from pewproc.ops.bench.corpus import CorpusFile, build_corpus, build_tiny
from pewproc.ops.bench.endtoend import BenchError, WorkerProcess, batch_figures, publish_batch
from pewproc.ops.bench.measurement import in_fresh_child, parse_only_child, stages_child
from pewproc.ops.bench.report import evaluate_targets, file_figures, summarize
from pewproc.settings import Settings


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

