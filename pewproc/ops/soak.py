"""`pewproc soak`: hundreds of matches through several workers while faults strike at random.

The run, all of it on queues and a schema of its own (`ENVIRONMENT=soak-<random>`,
`POSTGRES_SCHEMA=pewproc_soak_<random>`):

1. generate a corpus of small matches under OUT (the expected rows of each table are counted
   locally with `extract()` on the very file a worker will read), plus poison messages of known
   kinds, each with the dead-letter reason it must get, and extra copies of good matches;
2. start `--workers` instances of `python -m pewproc.parallel_worker`, each in a session of its
   own with its own JSON log;
3. for `--duration` seconds, publish the messages in bursts spread over the first three quarters
   of the window (so that faults meet work in flight, not idle workers), and at random intervals
   inject a fault drawn from `--faults`: SIGKILL of a pool child, SIGKILL or SIGTERM of a worker
   (restarted at once, as a supervisor would), a match's write lock held past
   TASK_TIMEOUT_SECONDS, and, when their commands are given, broker and database restarts;
4. stop injecting, let the workers drain until every queue is settled, stop them with SIGTERM;
5. account: every good match completed with exactly the expected rows in every table, every
   poison message in the dead-letter queue with its expected reason, nothing lost, nothing
   doubled. The table is printed and OUT/soak.json holds everything; the exit status is 0 only if
   every check passed.

`soak` takes every setting as an option (`pewproc.ops.options`), like every command.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from pewproc.ops.accounting import Expected, Observed, account
from pewproc.ops.jsonlog import JsonLog
from pewproc.ops.localcluster import ClusterError, LocalCluster
from pewproc.ops.options import ALL_GROUPS, settings_options
from pewproc.settings import Settings

FAULT_KINDS = ("child-kill", "worker-kill", "worker-term", "timeout", "broker-restart",
               "db-restart", "node-kill")
DEFAULT_FAULTS = "child-kill,worker-kill,worker-term,timeout"
DEFAULT_POOL_SIZE = 2  # children per worker when --pool-size (WORKER_POOL_SIZE) is not set

# The settings a soak imposes on its workers, whatever the environment says.
RETRY_DELAYS = "1,2,4"
MAX_RETRIES = 8  # 1+2+4*6 s of retries: far more than any injected fault lasts
TASK_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 15.0
DB_POOL_TIMEOUT = 2.0  # below TASK_TIMEOUT, so a database outage reads as one, not as a hang

PUBLISH_SHARE = 0.75  # publishing is spread over this share of the fault window
BURST_EVERY = 4.0  # seconds between bursts of publishing, about
ORPHAN_GRACE = 5.0  # seconds after a worker's SIGKILL before its process group is inspected
POLL = 0.2  # seconds between looks at processes, logs and queues
BUSY_SAMPLE = 0.05  # seconds between looks at the pool children's CPU time
BUSY_WAIT = 3.0  # longest wait, at a kill, for a pool child to be seen working

# Poison messages, by kind. The reason each must get in the DLQ is worked out before the run by
# the same functions a worker runs (decode, resolve, read), so a renamed reason cannot fail the
# soak; what the soak checks is that faults never change a poison message's fate.
POISON_KINDS = ("not_json", "missing_field", "missing_file", "truncated_gzip", "not_a_list",
                "outside_root", "not_an_object", "corrupt_gzip", "truncated_json", "too_large")


class SoakError(click.ClickException):
    """The soak could not run (no broker, no database, a worker that never started...)."""


# --- The command -----------------------------------------------------------------------------


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in value.split("-")]
    except ValueError:
        raise click.BadParameter("seconds as MIN-MAX, e.g. 3-10") from None
    low, high = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[-1])
    if len(parts) > 2 or low <= 0 or high < low:
        raise click.BadParameter("seconds as MIN-MAX with 0 < MIN <= MAX, e.g. 3-10")
    return low, high


def _fault_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise click.BadParameter(f"unknown fault {', '.join(unknown)}; choose from "
                                 f"{', '.join(FAULT_KINDS)}")
    return kinds


@click.command("soak")
@click.option("--matches", default=300, show_default=True, help="Good matches to publish.")
@click.option("--poison", default=20, show_default=True,
              help="Poison messages (bad JSON, missing field, missing file, truncated gzip, "
                   "not a list, outside TELEMETRY_ROOT...), each with its expected DLQ reason.")
@click.option("--duplicates", default=20, show_default=True,
              help="Extra copies of good matches, published after their originals.")
@click.option("--workers", "worker_count", default=2, show_default=True,
              help="Worker instances (python -m pewproc.parallel_worker).")
@click.option("--duration", default=180.0, show_default=True,
              help="Seconds of fault injection (publishing spans its first three quarters).")
@click.option("--seed", default=1, show_default=True,
              help="Seed of the corpus (match i uses seed + i) and of every random choice.")
@click.option("--players", default=16, show_default=True, help="Players per generated match.")
@click.option("--fault-interval", default="3-10", show_default=True, callback=_interval,
              help="Random seconds between two faults, MIN-MAX.")
@click.option("--faults", "fault_kinds", default=DEFAULT_FAULTS, show_default=True,
              callback=_fault_list,
              help="Faults to draw from: child-kill, worker-kill, worker-term, timeout (a "
                   "match's write lock held past TASK_TIMEOUT_SECONDS), broker-restart, "
                   "db-restart.")
@click.option("--broker-restart-cmd", default="",
              help="Shell command that restarts the broker; adds broker-restart to the faults.")
@click.option("--db-restart-cmd", default="",
              help="Shell command that restarts PostgreSQL; adds db-restart to the faults.")
@click.option("--drain-timeout", default=300.0, show_default=True,
              help="Longest wait, after the fault window, for the queues to settle, seconds.")
@click.option("--out", "out_dir", default="soak-out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Work folder: corpus, worker logs, and soak.json.")
@click.option("--keep", is_flag=True, help="Keep the soak schema and the corpus.")
@click.option("--cluster", is_flag=True,
              help="Run against a three-node RabbitMQ cluster of its own, started on this "
                   "machine, with a quorum work queue; adds node-kill (SIGKILL of the work "
                   "queue's leader node, restarted at once) to the faults.")
@settings_options(*ALL_GROUPS)
def soak(settings: Settings, matches: int, poison: int, duplicates: int, worker_count: int,
         duration: float, seed: int, players: int,
         fault_interval: tuple[float, float], fault_kinds: tuple[str, ...],
         broker_restart_cmd: str, db_restart_cmd: str, drain_timeout: float, out_dir: Path,
         keep: bool, cluster: bool) -> None:
    """Soak test: publish matches, run workers, inject faults at random, then account for
    every message (published, processed, retried, dead-lettered by reason, lost, duplicated).

    Touches only queues and a schema of its own; workers run with RETRY_DELAYS=1,2,4,
    MAX_RETRIES=8, TASK_TIMEOUT_SECONDS=5 whatever the settings say, and with --pool-size
    (WORKER_POOL_SIZE) children each, 2 unless set. Exit status 0 only if
    nothing was lost or doubled, every good match completed and every poison message reached
    the DLQ with its expected reason.
    """
    if matches < 1 or poison < 0 or duplicates < 0 or worker_count < 1:
        raise click.UsageError("need --matches, --workers >= 1 and --poison, --duplicates >= 0")
    if duration <= 0 or players < 2:
        raise click.UsageError("need --duration > 0 and --players >= 2")
    kinds = list(fault_kinds)
    for kind, command in (("broker-restart", broker_restart_cmd), ("db-restart", db_restart_cmd)):
        if command and kind not in kinds:
            kinds.append(kind)
        if kind in kinds and not command:
            raise click.UsageError(f"the {kind} fault needs --{kind}-cmd")
    if cluster and "node-kill" not in kinds:
        kinds.append("node-kill")
    if "node-kill" in kinds and not cluster:
        raise click.UsageError("the node-kill fault needs --cluster")
    if not kinds:
        raise click.UsageError("--faults names no fault")
    config = SoakConfig(
        matches=matches, poison=poison, duplicates=duplicates, workers=worker_count,
        pool_size=settings.worker_pool_size or DEFAULT_POOL_SIZE, duration=duration,
        seed=seed, players=players,
        fault_interval=fault_interval, faults=tuple(kinds),
        broker_restart_cmd=broker_restart_cmd, db_restart_cmd=db_restart_cmd,
        drain_timeout=drain_timeout, out_dir=out_dir.resolve(), keep=keep, cluster=cluster,
        suffix=uuid.uuid4().hex[:8],
    )
    report = Soak(settings, config).run()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    path = config.out_dir / "soak.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    click.echo(render_table(report))
    click.echo(f"wrote {path}")
    if not report["ok"]:
        failed = [name for name, ok in report["checks"].items() if not ok]
        click.echo(f"soak FAILED: {', '.join(failed)}", err=True)
        sys.exit(1)


@dataclass(frozen=True, kw_only=True)
class SoakConfig:
    matches: int
    poison: int
    duplicates: int
    workers: int
    pool_size: int
    duration: float
    seed: int
    players: int
    fault_interval: tuple[float, float]
    faults: tuple[str, ...]
    broker_restart_cmd: str
    db_restart_cmd: str
    drain_timeout: float
    out_dir: Path
    keep: bool
    cluster: bool
    suffix: str


# --- The corpus and the messages -------------------------------------------------------------


@dataclass(eq=False)
class Message:
    key: str  # unique per message: the match id, "<id>#copy<n>", or "poison-<n>-<kind>"
    kind: str  # good | duplicate | poison
    body: bytes
    match_id: str | None = None  # the good match it carries (good and duplicate)
    poison_kind: str | None = None
    expected_reason: str | None = None  # poison only


@dataclass
class GoodMatch:
    match_id: str
    path: Path
    expected_rows: dict[str, int]
    copies: int = 1


def build_corpus(root: Path, outside: Path, config: SoakConfig, settings: Settings,
                 rng: random.Random) -> tuple[dict[str, GoodMatch], list[Message]]:
    """The good matches (files written, rows counted) and every message, in publishing order."""
    from pewproc.message import MatchMessage
    from pewproc.processing import extract_file
    from pewproc.telemetry.synth import generate_match, match_id_for, write_match

    good: dict[str, GoodMatch] = {}
    messages: list[Message] = []
    step = max(1, config.matches // 10)
    for i in range(config.matches):
        match_seed = config.seed + i
        match_id = match_id_for(match_seed)
        path = root / f"matchID={match_id}" / "raw.json.gz"
        write_match(path, generate_match(match_seed, players=config.players,
                                         team_size=rng.choice((1, 2, 4))))
        # Exactly what a worker will do with this file: read it, then extract().
        rows = extract_file(path, match_id, settings)["rows"]
        good[match_id] = GoodMatch(match_id, path, rows)
        body = MatchMessage(match_id=match_id, file_path=str(path),
                            environment=settings.environment,
                            queue_target=settings.work_queue).to_json()
        messages.append(Message(match_id, "good", body, match_id))
        if (i + 1) % step == 0 or i + 1 == config.matches:
            _say(f"corpus: {i + 1}/{config.matches} matches")
    sample = next(iter(good.values())).path
    kinds = POISON_KINDS
    for n in range(config.poison):
        kind = kinds[n % len(kinds)]
        key = f"poison-{n}-{kind}"
        body = _poison_body(kind, key, n, root, outside, sample, settings)
        messages.append(Message(key, "poison", body, poison_kind=kind,
                                expected_reason=permanent_reason(key, body, settings)))
    rng.shuffle(messages)
    position = {m.key: i for i, m in enumerate(messages)}
    originals = [m for m in messages if m.kind == "good"]
    for n in range(config.duplicates):
        original = rng.choice(originals)
        assert original.match_id is not None
        good[original.match_id].copies += 1
        after = max(position[m.key] for m in messages
                    if m.match_id == original.match_id) + 1
        index = rng.randint(after, len(messages))
        messages.insert(index, Message(f"{original.match_id}#copy{n}", "duplicate",
                                       original.body, original.match_id))
        position = {m.key: i for i, m in enumerate(messages)}
    return good, messages


def _poison_body(kind: str, key: str, n: int, root: Path, outside: Path, sample: Path,
                 settings: Settings) -> bytes:
    """A message a worker must dead-letter at once, of the given kind; every body is unique."""

    def message(path: Path | str, **extra: Any) -> bytes:
        return orjson.dumps({"match_id": key, "file_path": str(path), **extra})

    def put(name: str, data: bytes) -> Path:
        path = root / "poison" / f"{key}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Dated long ago, as a broken file is: a cut-off file written just now would be retried
        # as still being written (FILE_SETTLE_SECONDS), which is not what this kind tests.
        settled = time.time() - 86_400
        os.utime(path, (settled, settled))
        return path

    raw = sample.read_bytes()
    if kind == "not_json":
        return b"{not json, poison %d" % n
    if kind == "missing_field":
        return orjson.dumps({"match_id": key})  # no file_path
    if kind == "not_an_object":
        return orjson.dumps([key, n])
    if kind == "missing_file":
        return message(root / "poison" / f"{key}-nowhere.json.gz")
    if kind == "truncated_gzip":
        return message(put("truncated.json.gz", raw[: len(raw) // 2]))
    if kind == "not_a_list":
        return message(put("object.json", orjson.dumps({"_T": "LogMatchStart", "n": n})))
    if kind == "corrupt_gzip":
        # A gzip header, then a deflate block of the reserved type 11.
        return message(put("corrupt.gz", b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 100))
    if kind == "truncated_json":
        text = gzip.decompress(raw)
        return message(put("truncated.json", text[: len(text) // 3]))
    if kind == "outside_root":
        target = outside / f"{key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.decompress(raw))
        link = root / "poison" / f"{key}-escape.json"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        return message(link)
    if kind == "too_large":
        return message(sample, pad="x" * (settings.max_message_bytes + 1))
    raise AssertionError(kind)


def permanent_reason(key: str, body: bytes, settings: Settings) -> str:
    """The dead-letter reason of a poison message: what a worker's first steps raise on it."""
    from pewproc.errors import PermanentError
    from pewproc.message import decode_message
    from pewproc.telemetry.reader import ReadLimits, read_telemetry, resolve_inside

    try:
        message = decode_message(body, settings.max_message_bytes)
        path = resolve_inside(message.file_path, settings.telemetry_root)
        read_telemetry(path, ReadLimits.of(settings))
    except PermanentError as exc:
        return exc.reason
    raise SoakError(f"poison message {key} reads fine: it would not be dead-lettered")


def schedule(messages: list[Message], duration: float) -> list[tuple[float, list[Message]]]:
    """Bursts (seconds after the window opens, messages), spread over PUBLISH_SHARE of it."""
    window = duration * PUBLISH_SHARE
    count = max(1, min(len(messages), round(window / BURST_EVERY)))
    bursts = []
    for k in range(count):
        part = messages[k * len(messages) // count:(k + 1) * len(messages) // count]
        if part:
            bursts.append((window * k / count, part))
    return bursts


# --- Worker processes ------------------------------------------------------------------------


class WorkerSlot:
    """One worker instance; a new process (and log file) each time it is (re)started."""

    def __init__(self, number: int, settings: Settings, log_dir: Path) -> None:
        self.number = number
        self.name = settings.worker_id
        self.settings = settings
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[JsonLog] = []
        self.state = "down"  # running | stopping | down
        self.started_at = 0.0
        self.stop_deadline = 0.0
        self.term_event: dict[str, Any] | None = None

    def start(self) -> None:
        path = self.log_dir / f"worker-{self.number}-{len(self.logs) + 1}.log"
        with path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pewproc.parallel_worker"],
                env={**os.environ, **self.settings.to_env()}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.logs.append(JsonLog(path))
        self.state = "running"
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def consuming(self) -> bool:
        """Started and consuming, in its current incarnation."""
        if not self.logs or self.state != "running" or not self.alive():
            return False
        current = self.logs[-1]
        current.poll()
        return any(str(r.get("message", "")).startswith("consuming") for r in current.records)

    def pool_children(self) -> list[int]:
        """Pids of the pool's children: processes forked by the worker's fork server."""
        if not self.alive():
            return []
        table = _process_table()
        servers = [pid for pid, (ppid, _) in table.items()
                   if ppid == self.pid and b"forkserver" in _cmdline(pid)]
        return sorted(pid for pid, (ppid, _) in table.items() if ppid in servers)

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for log in self.logs:
            log.poll()
            out.extend(log.records)
        return out

    def tail(self, chars: int = 1500) -> str:
        if not self.logs:
            return ""
        return self.logs[-1].path.read_text(errors="replace")[-chars:]


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live (not zombie) process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def _cpu_ticks(pid: int) -> int:
    """CPU time a process has used so far, in clock ticks (-1: it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    return int(fields[11]) + int(fields[12])  # utime + stime


def busy_child(pids: list[int], within: float = BUSY_WAIT) -> int | None:
    """The first of `pids` seen using CPU, looked at every BUSY_SAMPLE s for up to `within` s.

    An idle pool child waits on its pipe and uses none, so a kill aimed at a child seen busy a
    moment ago, or at its worker, hits a match in flight; a kill of an idle worker proves
    nothing."""
    last = {pid: _cpu_ticks(pid) for pid in pids}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        time.sleep(BUSY_SAMPLE)  # the sampling interval, not a wait for an event
        for pid in pids:
            ticks = _cpu_ticks(pid)
            if last[pid] >= 0 and ticks > last[pid]:
                return pid
            last[pid] = ticks
    return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def group_members(pgid: int) -> list[dict[str, Any]]:
    """Live processes of a process group, with their command lines."""
    return [{"pid": pid, "cmdline": _cmdline(pid).replace(b"\0", b" ").decode(errors="replace")
             .strip()[:200]}
            for pid, (_, group) in sorted(_process_table().items()) if group == pgid]


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- The run ---------------------------------------------------------------------------------


class Soak:
    def __init__(self, settings: Settings, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        out = config.out_dir
        self.root = out / f"corpus-{config.suffix}"
        self.outside = out / f"outside-{config.suffix}"
        self.log_dir = out / f"logs-{config.suffix}"
        self.root.mkdir(parents=True, exist_ok=True)  # TELEMETRY_ROOT must exist
        self.settings = settings.replace(
            environment=f"soak-{config.suffix}", postgres_schema=f"pewproc_soak_{config.suffix}",
            telemetry_root=str(self.root), match_kinds="*", log_format="json", log_level="INFO",
            metrics_port=0, processing_mode="parallel", worker_pool_size=config.pool_size,
            retry_delays=RETRY_DELAYS, max_retries=MAX_RETRIES, task_timeout=TASK_TIMEOUT,
            shutdown_timeout=SHUTDOWN_TIMEOUT, db_pool_timeout=DB_POOL_TIMEOUT,
        )
        self.slots: list[WorkerSlot] = []
        self.faults: list[dict[str, Any]] = []
        self.skipped_faults = 0
        self.unexpected_exits: list[dict[str, Any]] = []
        self.left_after_stop: dict[str, list[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.messages: list[Message] = []
        self.good: dict[str, GoodMatch] = {}
        self.published: dict[str, float] = {}  # message key -> seconds into the window
        self.resends: list[str] = []  # keys published again after an unconfirmed publish
        self._published_lock = threading.Lock()
        self._broker_lock = threading.Lock()  # held by publishing and by broker restarts
        self._stop = threading.Event()  # the fault window is over (or the run is aborted)
        self._dead_groups: list[tuple[int, float, dict[str, Any]]] = []
        self._hold: threading.Thread | None = None
        self.cluster: LocalCluster | None = None
        self._node_restart: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._t0 = 0.0

    # Phases

    def run(self) -> dict[str, Any]:
        started = time.time()
        load_before = os.getloadavg()
        accounting: dict[str, Any] = {}
        phases: dict[str, float] = {}
        try:
            self._prepare()
            phases["prepare_s"] = time.time() - started
            self._start_workers()
            mark = time.time()
            self._window()
            phases["window_s"] = time.time() - mark
            mark = time.time()
            drain = self._drain()
            phases["drain_s"] = time.time() - mark
            final_exits = self._stop_workers()
            accounting = self._account()
            accounting["drain"] = drain
            accounting["workers"]["final_exit_codes"] = final_exits
        except SoakError:
            raise
        except Exception as exc:
            raise SoakError(f"soak aborted: {type(exc).__name__}: {exc}") from exc
        finally:
            self._stop.set()
            self._clean_up()
        report = {
            "version": 1,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_s": round(time.time() - started, 1),
            "phases": {k: round(v, 1) for k, v in phases.items()},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(), "load_before": load_before,
                        "load_after": os.getloadavg()},
            "config": {**{k: v for k, v in vars(self.config).items()
                          if k not in ("broker_restart_cmd", "db_restart_cmd")},
                       "broker_restart_cmd": bool(self.config.broker_restart_cmd),
                       "db_restart_cmd": bool(self.config.db_restart_cmd),
                       "environment": self.settings.environment,
                       "schema": self.settings.postgres_schema,
                       "retry_delays": RETRY_DELAYS, "max_retries": MAX_RETRIES,
                       "task_timeout_s": TASK_TIMEOUT, "log_dir": str(self.log_dir)},
            **accounting,
            "errors": self.errors,
        }
        report["checks"] = checks(report)
        report["ok"] = all(report["checks"].values())
        return report

    def _prepare(self) -> None:
        import psycopg

        from pewproc.broker.connection import connect
        from pewproc.broker.topology import declare_topology
        from pewproc.storage.migrate import migrate

        for folder in (self.root, self.outside, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        _say(f"soak {self.settings.environment}: schema {self.settings.postgres_schema}")
        try:
            migrate(self.settings.conninfo, self.settings.postgres_schema)
        except psycopg.OperationalError as exc:
            raise SoakError(f"cannot reach PostgreSQL: {exc}") from None
        if self.config.cluster:
            self._start_cluster()
        try:
            connection = connect(self.settings)
        except Exception as exc:
            raise SoakError(f"cannot reach RabbitMQ: {type(exc).__name__}: {exc}") from None
        try:
            if self.config.cluster:  # as an operator would: the work queue, a quorum queue
                connection.channel().queue_declare(self.settings.work_queue, durable=True,
                                                   arguments={"x-queue-type": "quorum"})
            declare_topology(connection, self.settings)
        finally:
            connection.close()
        _say(f"corpus: generating {self.config.matches} matches of {self.config.players} "
             f"players under {self.root}")
        self.good, self.messages = build_corpus(self.root, self.outside, self.config,
                                                self.settings, self.rng)

    def _start_cluster(self) -> None:
        self.cluster = LocalCluster(self.config.out_dir / f"cluster-{self.config.suffix}")
        _say("cluster: starting three RabbitMQ nodes")
        try:
            self.cluster.start()
        except ClusterError as exc:
            raise SoakError(f"cannot start the cluster: {exc}") from None
        self.settings = self.settings.replace(rabbitmq_url=self.cluster.urls)
        _say(f"cluster: {', '.join(n.full_name for n in self.cluster.nodes)} on ports "
             f"{', '.join(str(n.port) for n in self.cluster.nodes)}")

    def _kill_node(self, event: dict[str, Any]) -> bool:
        """SIGKILL the node leading the work queue (the one the workers reached first, too),
        and start it again at once, as a supervisor would; one node down at a time."""
        cluster = self.cluster
        assert cluster is not None
        if (self._node_restart is not None and self._node_restart.is_alive()) or len(
                cluster.alive()) < len(cluster.nodes):
            return False
        node = cluster.queue_leader(self.settings.work_queue)
        node.kill()
        killed_at = time.monotonic()
        event.update(node=node.name, leader=True)

        def restart() -> None:
            try:
                cluster.restart(node)
                event["back_after_s"] = round(time.monotonic() - killed_at, 1)
            except ClusterError as exc:
                event["error"] = str(exc)[-300:]

        self._node_restart = threading.Thread(target=restart, name="soak-node-restart",
                                              daemon=True)
        self._node_restart.start()
        return True

    def _start_workers(self) -> None:
        for n in range(self.config.workers):
            settings = self.settings.replace(worker_id=f"soak-{self.config.suffix}-w{n}")
            slot = WorkerSlot(n, settings, self.log_dir)
            slot.start()
            self.slots.append(slot)
        deadline = time.monotonic() + 120
        while not all(slot.consuming() for slot in self.slots):
            for slot in self.slots:
                if not slot.alive():
                    raise SoakError(f"worker {slot.name} exited at start "
                                    f"({slot.process.returncode if slot.process else '?'}):\n"
                                    f"{slot.tail()}")
            if time.monotonic() > deadline:
                raise SoakError("workers not consuming after 120 s")
            time.sleep(POLL)
        _say(f"{len(self.slots)} workers consuming {self.settings.work_queue}")

    def _window(self) -> None:
        config = self.config
        self._t0 = time.monotonic()
        bursts = schedule(self.messages, config.duration)
        self._publisher = threading.Thread(target=self._publish_all, args=(bursts,),
                                           name="soak-publisher", daemon=True)
        self._publisher.start()
        _say(f"fault window: {config.duration:.0f} s, faults {', '.join(config.faults)} every "
             f"{config.fault_interval[0]:g}-{config.fault_interval[1]:g} s; publishing "
             f"{len(self.messages)} messages in {len(bursts)} bursts")
        end = self._t0 + config.duration
        next_fault = self._t0 + self.rng.uniform(*config.fault_interval)
        while time.monotonic() < end:
            self._supervise()
            if time.monotonic() >= next_fault:
                self._inject()
                next_fault = time.monotonic() + self.rng.uniform(*config.fault_interval)
            time.sleep(POLL)
        self._stop.set()
        _say(f"fault window over: {len(self.faults)} faults injected; waiting for publishing "
             "and lock holds to end")
        deadline = time.monotonic() + config.drain_timeout
        for thread in (self._publisher, self._hold, self._node_restart):
            while thread is not None and thread.is_alive() and time.monotonic() < deadline:
                self._supervise()
                thread.join(POLL)
        if self._publisher.is_alive():
            self.errors.append("publishing did not finish")

    def _drain(self) -> dict[str, Any]:
        """Wait until no queue holds work and nothing moves; returns how it went."""
        started = time.monotonic()
        deadline = started + self.config.drain_timeout
        total = len(self.messages) + len(self.resends)
        last: tuple[Any, ...] | None = None
        stable_since = started
        depths: dict[str, int | None] = {}
        while True:
            self._supervise()
            depths = self._queue_depths()
            records = [r for slot in self.slots for r in slot.records() if "action" in r]
            terminal = sum(r["action"] in ("ack", "dead_letter") for r in records)
            snapshot = (tuple(depths.values()), len(records))
            now = time.monotonic()
            if snapshot != last:
                last, stable_since = snapshot, now
            dlq = depths.get(self.settings.dead_letter_queue)
            work_left = any(v is None or v > 0 for q, v in depths.items()
                            if q != self.settings.dead_letter_queue)
            # Every message has been settled once: a short calm proves the queues settled.
            # Otherwise something is still moving or lost: wait out a task's time limit.
            complete = terminal >= total and dlq is not None and dlq >= self.config.poison
            calm = 2.0 if complete else TASK_TIMEOUT + 3.0
            if not work_left and now - stable_since >= calm:
                timed_out = False
                break
            if now > deadline:
                timed_out = True
                self.errors.append(f"queues not settled after {self.config.drain_timeout:.0f} s")
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        _say(f"drained in {seconds:.1f} s: {depths}")
        return {"seconds": round(seconds, 1), "timed_out": timed_out, "depths": depths}

    def _stop_workers(self) -> list[int | None]:
        # A worker restarted a moment ago must be up before its SIGTERM can mean "drain".
        deadline = time.monotonic() + 60
        while not all(slot.consuming() for slot in self.slots) and time.monotonic() < deadline:
            self._supervise()
            time.sleep(POLL)
        for slot in self.slots:
            if slot.alive():
                slot.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        codes: list[int | None] = []
        for slot in self.slots:
            if slot.process is None:
                codes.append(None)
                continue
            try:
                codes.append(slot.process.wait(SHUTDOWN_TIMEOUT + 30))
            except subprocess.TimeoutExpired:
                self.errors.append(f"worker {slot.name} ignored SIGTERM for "
                                   f"{SHUTDOWN_TIMEOUT + 30:.0f} s")
                codes.append(None)
            slot.state = "down"
        # A clean exit stops every child; the fork server may take a moment to notice.
        left: dict[str, list[dict[str, Any]]] = {}
        deadline = time.monotonic() + ORPHAN_GRACE
        for slot in self.slots:
            while group_members(slot.pid) and time.monotonic() < deadline:
                time.sleep(POLL)
            if group_members(slot.pid):
                left[slot.name] = group_members(slot.pid)
            kill_group(slot.pid)
        self.left_after_stop = left
        while self._dead_groups:  # the groups of workers ended in the window, not yet looked at
            self._inspect_dead_groups()
            time.sleep(POLL)
        _say(f"workers stopped, exit codes {codes}")
        return codes

    # Supervision and faults

    def _supervise(self) -> None:
        """Restart workers that stopped; inspect the process groups of killed ones."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None:
                continue
            code = slot.process.poll()
            if slot.state == "stopping":
                event = slot.term_event or {}
                if code is None and now < slot.stop_deadline:
                    continue
                if code is None:
                    event["exit_code"] = (f"killed: still running {SHUTDOWN_TIMEOUT + 15:.0f} s "
                                          "after SIGTERM")
                    kill_group(slot.pid)
                    slot.process.wait(10)
                else:
                    event["exit_code"] = code
                    event["exit_s"] = round(now - event["_sent"], 2)
                    self._dead_groups.append((slot.pid, now, event))
                slot.start()
            elif slot.state == "running" and code is not None:
                self.unexpected_exits.append({
                    "worker": slot.name, "pid": slot.pid, "exit_code": code,
                    "at_s": round(now - self._t0, 1), "log": str(slot.logs[-1].path),
                    "tail": slot.tail(800)})
                kill_group(slot.pid)
                slot.start()
        self._inspect_dead_groups()

    def _inspect_dead_groups(self) -> None:
        now = time.monotonic()
        for entry in list(self._dead_groups):
            pgid, ended_at, event = entry
            if now - ended_at >= ORPHAN_GRACE:
                # What the worker left running after it ended: the soak's killpg then ends it.
                event["orphans_after_grace"] = group_members(pgid)
                kill_group(pgid)
                self._dead_groups.remove(entry)

    def _inject(self) -> None:
        kinds = list(self.config.faults)
        self.rng.shuffle(kinds)
        for kind in kinds:
            event: dict[str, Any] = {"kind": kind,
                                     "at_s": round(time.monotonic() - self._t0, 1)}
            try:
                applied = self._apply(kind, event)
            except Exception as exc:  # the fault itself failed: note it, go on
                event["error"] = f"{type(exc).__name__}: {exc}"
                applied = True
            if applied:
                # The event is completed later (exit code, orphans, lock hold): keep this dict.
                self.faults.append(event)
                shown = ", ".join(f"{k}={v}" for k, v in event.items()
                                  if k not in ("kind", "at_s") and not k.startswith("_"))
                _say(f"  {event['at_s']:6.1f} s  {kind}: {shown}")
                return
        self.skipped_faults += 1

    def _apply(self, kind: str, event: dict[str, Any]) -> bool:
        """Inject one fault, noting what it hit in `event`; False when it cannot strike now."""
        ready = [slot for slot in self.slots if slot.consuming()]
        if kind in ("child-kill", "worker-kill"):
            # Aimed at a child working on a match (or at its worker): that is the test.
            children = {pid: slot for slot in ready for pid in slot.pool_children()}
            pids = list(children)
            self.rng.shuffle(pids)
            child = busy_child(pids)
            if child is None:
                return False
            slot = children[child]
            event["hit_in_flight"] = True
        if kind == "child-kill":
            os.kill(child, signal.SIGKILL)
            event.update(worker=slot.name, pid=child)
            return True
        if kind == "worker-kill":
            pid = slot.pid
            os.kill(pid, signal.SIGKILL)
            assert slot.process is not None
            slot.process.wait(10)
            event.update(worker=slot.name, pid=pid)
            self._dead_groups.append((pid, time.monotonic(), event))
            slot.start()  # as a supervisor would, at once
            return True
        if kind == "worker-term":
            if not ready:
                return False
            slot = self.rng.choice(ready)
            assert slot.process is not None
            slot.process.send_signal(signal.SIGTERM)
            slot.state = "stopping"
            slot.stop_deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 15
            event.update(worker=slot.name, pid=slot.pid, _sent=time.monotonic())
            slot.term_event = event
            return True
        if kind == "timeout":
            if self._hold is not None and self._hold.is_alive():
                return False
            match_id = self._timeout_target()
            if match_id is None:
                return False
            event["match_id"] = match_id
            self._hold = threading.Thread(target=self._hold_lock, args=(match_id, event),
                                          name="soak-lock-hold", daemon=True)
            self._hold.start()
            return True
        if kind == "broker-restart":
            with self._broker_lock:
                event.update(self._run_command(self.config.broker_restart_cmd))
            return True
        if kind == "db-restart":
            event.update(self._run_command(self.config.db_restart_cmd))
            return True
        if kind == "node-kill":
            return self._kill_node(event)
        raise AssertionError(kind)

    @staticmethod
    def _run_command(command: str) -> dict[str, Any]:
        t0 = time.monotonic()
        done = subprocess.run(command, shell=True, capture_output=True, timeout=180,
                              check=False)
        result: dict[str, Any] = {"exit_code": done.returncode,
                                  "seconds": round(time.monotonic() - t0, 1)}
        if done.returncode:
            result["error"] = (done.stdout + done.stderr).decode(errors="replace")[-500:]
        return result

    def _timeout_target(self) -> str | None:
        """The next good match to be published (its task is sure to come and block), else one
        published but not completed yet; None if every match is done."""
        import psycopg

        with self._published_lock:
            upcoming = [m.match_id for m in self.messages
                        if m.kind == "good" and m.key not in self.published]
            published = {m.match_id for m in self.messages
                         if m.kind == "good" and m.key in self.published}
        if upcoming:
            return upcoming[0]
        try:
            with psycopg.connect(self.settings.conninfo, autocommit=True,
                                 connect_timeout=5) as conn:
                done = {row[0] for row in conn.execute(
                    "SELECT match_id FROM matches WHERE status = 'completed'")}
        except psycopg.Error:
            return None
        waiting = sorted(m for m in published - done if m is not None)
        return self.rng.choice(waiting) if waiting else None

    def _hold_lock(self, match_id: str, event: dict[str, Any]) -> None:
        """Hold the match's write lock until a task waits on it, then past TASK_TIMEOUT."""
        import psycopg

        from pewproc.storage.writer import _LOCK_SEED

        t0 = time.monotonic()
        try:
            with psycopg.connect(self.settings.conninfo, connect_timeout=5) as holder, \
                    psycopg.connect(self.settings.conninfo, autocommit=True,
                                    connect_timeout=5) as watcher:
                holder.execute("SET lock_timeout = '10s'")
                holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
                               (match_id, _LOCK_SEED))
                pid = holder.info.backend_pid
                give_up = t0 + 4 * TASK_TIMEOUT + self.config.fault_interval[1]
                waiter_seen = None
                while time.monotonic() < give_up:
                    row = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE %s = ANY(pg_blocking_pids(pid))", (pid,)).fetchone()
                    if row and row[0]:
                        waiter_seen = time.monotonic()
                        break
                    if self._stop.wait(0.1):
                        break
                event["task_blocked"] = waiter_seen is not None
                if waiter_seen is not None:
                    event["waited_s"] = round(waiter_seen - t0, 1)
                    time.sleep(TASK_TIMEOUT + 2.0)  # past the limit: the task must be timed out
                holder.rollback()
        except psycopg.Error as exc:  # a database restart ends the hold early
            event["error"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        except Exception as exc:
            event["error"] = f"{type(exc).__name__}: {exc}"
        event["held_s"] = round(time.monotonic() - t0, 1)

    # Publishing

    def _publish_all(self, bursts: list[tuple[float, list[Message]]]) -> None:
        try:
            for offset, batch in bursts:
                delay = self._t0 + offset - time.monotonic()
                if delay > 0 and self._stop.wait(delay) and self._stopped_early():
                    return
                self._publish(batch)
        except Exception as exc:
            self.errors.append(f"publisher: {type(exc).__name__}: {exc}")

    def _stopped_early(self) -> bool:
        """The window closes after publishing ends, unless the run was aborted."""
        return time.monotonic() < self._t0 + self.config.duration

    def _publish(self, batch: list[Message]) -> None:
        import pika.exceptions

        from pewproc.broker.connection import connect
        from pewproc.broker.publisher import ConfirmingPublisher

        pending = list(batch)
        attempts = 0
        while pending:
            try:
                with self._broker_lock:
                    connection = connect(self.settings)
                    try:
                        publisher = ConfirmingPublisher(connection)
                        while pending:
                            publisher.publish(self.settings.work_queue, pending[0].body)
                            message = pending.pop(0)
                            with self._published_lock:
                                self.published[message.key] = time.monotonic() - self._t0
                    finally:
                        with contextlib.suppress(Exception):
                            connection.close()
            except (pika.exceptions.AMQPError, OSError) as exc:
                attempts += 1
                # The broker may or may not have taken the message in flight: send it again.
                self.resends.append(pending[0].key)
                if attempts > 30:
                    raise RuntimeError(f"cannot publish: {exc}") from exc
                time.sleep(1.0)

    # Queues, accounting, clean-up

    def _queue_depths(self) -> dict[str, int | None]:
        """Messages ready in each queue (None: the broker did not answer)."""
        from pewproc.broker.connection import connect
        from pewproc.broker.topology import all_queues

        queues = all_queues(self.settings)
        try:
            connection = connect(self.settings)
        except Exception:
            return dict.fromkeys(queues)
        try:
            channel = connection.channel()
            return {q: channel.queue_declare(q, passive=True).method.message_count
                    for q in queues}
        except Exception:
            return dict.fromkeys(queues)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _account(self) -> dict[str, Any]:
        import psycopg
        from psycopg import sql

        from pewproc.broker.connection import connect
        from pewproc.broker.deadletters import list_dead_letters
        from pewproc.telemetry.extract import output_tables

        depths = self._queue_depths()
        tables = [t.name for t in output_tables()]
        with psycopg.connect(self.settings.conninfo, autocommit=True) as conn:
            matches = {row[0]: row[1:] for row in conn.execute(
                "SELECT match_id, status, times_processed, error_reason FROM matches")}
            found: dict[str, dict[str, int]] = defaultdict(dict)
            for name in tables:
                for match_id, count in conn.execute(sql.SQL(
                        "SELECT match_id, count(*) FROM {} GROUP BY match_id").format(
                        sql.Identifier(name))):
                    found[match_id][name] = count
        connection = connect(self.settings)
        try:
            letters = list_dead_letters(connection, self.settings)
        finally:
            connection.close()

        records = [r for slot in self.slots for r in slot.records()]
        outcomes = [r for r in records if "action" in r]
        poison = [m for m in self.messages if m.kind == "poison"]
        expected = Expected(
            rows={m: {t: g.expected_rows.get(t, 0) for t in tables} for m, g in self.good.items()},
            copies={m: g.copies for m, g in self.good.items()},
            bodies={m.body: m.match_id for m in self.messages if m.match_id is not None},
            poison={m.body: (m.key, m.expected_reason or "") for m in poison},
        )
        verdict = account(expected, Observed(
            matches={m: (row[0], row[1]) for m, row in matches.items()}, rows=found,
            letters=[(letter.body, letter.reason) for letter in letters], depths=depths,
            dead_letter_queue=self.settings.dead_letter_queue))
        good_dead: dict[str, list[str]] = defaultdict(list)
        for letter in letters:
            if letter.body in expected.bodies:
                good_dead[expected.bodies[letter.body]].append(letter.reason)
        retries = Counter(str(r.get("reason")) for r in outcomes if r["action"] == "retry")
        worker_dead_letters = Counter(str(r.get("reason")) for r in outcomes
                                      if r["action"] == "dead_letter")
        # A lock hold ended by a database restart still counts if it blocked its task.
        struck = [f for f in self.faults if "error" not in f or f.get("task_blocked")]
        faults = Counter(f["kind"] for f in struck)
        failed_faults = [f for f in self.faults if f not in struck]
        return {
            "published": {
                "good": len(self.good),
                "duplicates": sum(m.kind == "duplicate" for m in self.messages),
                "poison": len(poison),
                "total": len(self.messages),
                "confirmed": len(self.published),
                "resent_after_publish_error": self.resends,
                "duplicated_match_ids": sorted({m.match_id for m in self.messages
                                                if m.kind == "duplicate" and m.match_id}),
                "poison_kinds": {m.key: m.expected_reason for m in poison},
            },
            "processed": {
                "completed_exact": len(verdict.completed),
                "expected": len(self.good),
                "acks": sum(r["action"] == "ack" for r in outcomes),
                "writes": sum(matches.get(m, (None, 0))[1] for m in self.good),
                "rows_expected": sum(sum(g.expected_rows.values()) for g in self.good.values()),
                "not_completed": sorted(set(self.good) - set(verdict.completed)),
                "rows_mismatched": verdict.mismatched,
            },
            "retried": {"total": sum(retries.values()), "by_reason": dict(retries.most_common())},
            "dead_lettered": {
                "total": len(letters),
                "by_reason": dict(Counter(letter.reason for letter in letters).most_common()),
                "settled_by_workers": dict(worker_dead_letters.most_common()),
                "poison_expected_reason": (len(poison) - len(verdict.lost_poison)
                                           - len(verdict.wrong_reason)),
                "poison_wrong_reason": verdict.wrong_reason,
                "poison_extra_copies": verdict.extra_poison_copies,
                "good_matches": dict(good_dead),
            },
            "lost": {
                "total": (len(verdict.lost) + len(verdict.lost_poison)
                          + len(verdict.lost_copies)),
                "matches": verdict.lost,
                "poison": verdict.lost_poison,
                "copies": verdict.lost_copies,
            },
            "duplicated": {"total": len(verdict.duplicated), "matches": verdict.duplicated},
            "orphaned": verdict.orphaned,
            "verdict": verdict.checks(),
            "queues_after_stop": depths,
            "left_in_queues": verdict.left_in_queues,
            "faults": {
                "injected": sum(faults.values()),
                "by_kind": {k: faults.get(k, 0) for k in self.config.faults},
                "skipped": self.skipped_faults,
                "failed": [{k: v for k, v in f.items() if not k.startswith("_")}
                           for f in failed_faults],
                "kills_hitting_work_in_flight": sum(
                    bool(f.get("hit_in_flight")) for f in self.faults
                    if f["kind"] in ("child-kill", "worker-kill")),
                "timeouts_that_blocked_a_task": sum(
                    bool(f.get("task_blocked")) for f in self.faults if f["kind"] == "timeout"),
                "events": [{k: v for k, v in f.items() if not k.startswith("_")}
                           for f in self.faults],
            },
            "workers": {
                "starts": sum(len(slot.logs) for slot in self.slots),
                "term_exit_codes": [f.get("exit_code") for f in self.faults
                                    if f["kind"] == "worker-term"],
                "unexpected_exits": self.unexpected_exits,
                "kills_leaving_orphans": sum(
                    bool(f.get("orphans_after_grace")) for f in self.faults
                    if f["kind"] == "worker-kill"),
                "terms_leaving_orphans": sum(
                    bool(f.get("orphans_after_grace")) for f in self.faults
                    if f["kind"] == "worker-term"),
                "left_after_final_stop": self.left_after_stop,
            },
            "log": log_summary(records),
        }

    def _clean_up(self) -> None:
        for thread in (self._publisher, self._hold, self._node_restart):
            if thread is not None:
                thread.join(30)
        for slot in self.slots:
            if slot.process is not None:
                kill_group(slot.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    slot.process.wait(10)
        for pgid, _, _ in self._dead_groups:
            kill_group(pgid)
        with contextlib.suppress(Exception):
            self._delete_queues()
        if self.cluster is not None:
            self.cluster.stop()
        if not self.config.keep:
            try:
                self._drop_schema()
            except Exception as exc:
                self.errors.append(f"could not drop schema {self.settings.postgres_schema}: "
                                   f"{exc}")
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.outside, ignore_errors=True)

    def _drop_schema(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.settings.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.settings.postgres_schema)))

    def _delete_queues(self) -> None:
        from pewproc.broker.connection import connect
        from pewproc.broker.topology import delete_topology

        connection = connect(self.settings)
        try:
            delete_topology(connection, self.settings)
        finally:
            connection.close()


# --- Reporting -------------------------------------------------------------------------------


def log_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Warnings and errors of every worker log, grouped by message with numbers blanked."""
    counts: Counter[str] = Counter()
    for record in records:
        if record.get("level") in ("WARNING", "ERROR", "CRITICAL") and "action" not in record:
            text = re.sub(r"\d+(\.\d+)?", "N", str(record.get("message", "")))[:120]
            counts[f"{record['level']}: {text}"] += 1
    return {"warnings_and_errors": dict(counts.most_common()),
            "exceptions": sum("exception" in r for r in records)}


def checks(report: dict[str, Any]) -> dict[str, bool]:
    if "lost" not in report:
        return {"ran_to_the_end": False}
    exits = report["workers"].get("final_exit_codes", [])
    return {
        **report["verdict"],
        "every_good_match_completed": (report["processed"]["completed_exact"]
                                       == report["processed"]["expected"]),
        "workers_exit_0_on_sigterm": bool(exits) and all(code == 0 for code in exits),
        "nothing_left_running_after_sigterm": not report["workers"]["left_after_final_stop"],
        "no_worker_exited_by_itself": not report["workers"]["unexpected_exits"],
        "drained_in_time": not report["drain"]["timed_out"],
        # A soak whose faults never struck work in flight proves nothing.
        "faults_struck": report["faults"]["injected"] > 0 and (
            report["faults"]["kills_hitting_work_in_flight"] > 0
            or not {"child-kill", "worker-kill"} & set(report["faults"]["by_kind"])),
    }


def render_table(report: dict[str, Any]) -> str:
    config = report["config"]

    def detail(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in counts.items())

    lines = [
        f"soak {config['environment']}: {config['workers']} workers x {config['pool_size']} "
        f"children, {config['duration']:g} s of faults, {report['duration_s']:.0f} s in all "
        f"({report['machine']['cpus']} CPUs)",
    ]
    if "published" not in report:
        lines.append("did not run to the end: " + "; ".join(report["errors"]))
        return "\n".join(lines)
    pub, proc = report["published"], report["processed"]
    dead, faults, workers = report["dead_lettered"], report["faults"], report["workers"]
    rows = [
        ("published", pub["total"], f"{pub['good']} matches, {pub['duplicates']} duplicates, "
                                    f"{pub['poison']} poison"),
        ("processed (completed, exact rows)", f"{proc['completed_exact']}/{proc['expected']}",
         f"{proc['acks']} acks, {proc['writes']} writes"),
        ("retried", report["retried"]["total"], detail(report["retried"]["by_reason"])),
        ("dead-lettered", dead["total"], detail(dead["by_reason"])),
        ("  poison with expected reason", f"{dead['poison_expected_reason']}/{pub['poison']}",
         f"{dead['poison_extra_copies']} extra copies" if dead["poison_extra_copies"] else ""),
        ("  good matches dead-lettered", len(dead["good_matches"]), ""),
        ("lost", report["lost"]["total"], ""),
        ("duplicated", report["duplicated"]["total"], ""),
        ("faults injected", faults["injected"], detail(faults["by_kind"])),
        ("  kills that hit a match in flight", faults["kills_hitting_work_in_flight"],
         "each child-kill and worker-kill is aimed at a pool child using CPU"),
        ("  timeouts that blocked a task", faults["timeouts_that_blocked_a_task"], ""),
        ("worker starts", workers["starts"],
         f"exit codes on SIGTERM: {workers['term_exit_codes']} in the window, "
         f"{workers.get('final_exit_codes')} at the end"),
        ("  workers that exited by themselves", len(workers["unexpected_exits"]),
         "; ".join(f"{u['worker']} exit {u['exit_code']} at {u['at_s']} s"
                   for u in workers["unexpected_exits"])[:200]),
        ("  worker SIGKILLs leaving orphans", workers["kills_leaving_orphans"],
         f"of {faults['by_kind'].get('worker-kill', 0)}: processes of the killed worker's group "
         f"alive {ORPHAN_GRACE:g} s later"),
        ("left in queues after stop", report["left_in_queues"], ""),
    ]
    width = max(len(r[0]) for r in rows) + 2
    lines += [f"{name:<{width}}{value!s:>9}   {extra}".rstrip() for name, value, extra in rows]
    failed = [name for name, ok in report["checks"].items() if not ok]
    lines.append("result: " + ("OK" if not failed else "FAILED (" + ", ".join(failed) + ")"))
    return "\n".join(lines)


def _say(text: str) -> None:
    click.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", err=True)

