"""Helpers for tests that drive a real broker, a real database and real worker processes.

Waiting is always for a condition, polled with a deadline; never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pika
import psycopg
import pytest

from pewproc.broker.connection import connect
from pewproc.broker.publisher import ConfirmingPublisher
from pewproc.broker.topology import declare_topology
from pewproc.message import MatchMessage
from pewproc.ops.jsonlog import JsonLog
from pewproc.settings import Settings
from pewproc.storage.writer import _LOCK_SEED
from pewproc.telemetry.synth import generate_match, write_match


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def make_match(settings: Settings, match_id: str, *, seed: int = 1, players: int = 8,
               team_size: int = 2, duration_s: float = 300.0, **kwargs: Any) -> Path:
    """Write a generated match under TELEMETRY_ROOT as matchID={id}/raw.json.gz."""
    path = Path(settings.telemetry_root) / f"matchID={match_id}" / "raw.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    events = generate_match(seed, players=players, team_size=team_size, duration_s=duration_s,
                            **kwargs)
    write_match(path, events)
    return path


def publish(settings: Settings, bodies: list[bytes], queue: str | None = None,
            headers: dict[str, Any] | None = None, declare: bool = True,
            properties: pika.BasicProperties | None = None) -> None:
    connection = connect(settings)
    try:
        if declare:
            declare_topology(connection, settings)
        publisher = ConfirmingPublisher(connection)
        for body in bodies:
            publisher.publish(queue or settings.work_queue, body, headers, properties)
    finally:
        connection.close()


def message_for(match_id: str, path: Path) -> bytes:
    return MatchMessage(match_id=match_id, file_path=str(path)).to_json()


def rabbitmqctl_table(broker: Any, *args: str) -> list[list[str]]:
    """Rows of a rabbitmqctl listing of the test node, tab-separated columns."""
    out = broker.rabbitctl_output(*args, "--no-table-headers", "--quiet")
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def queue_counts(broker: Any, queue: str) -> tuple[int, int, int]:
    """(ready, unacked, consumers) of a queue as the broker reports them."""
    for row in rabbitmqctl_table(broker, "list_queues", "name", "messages_ready",
                                 "messages_unacknowledged", "consumers"):
        if row[0] == queue:
            return int(row[1]), int(row[2]), int(row[3])
    raise AssertionError(f"queue {queue} not found")


def match_rows(db: psycopg.Connection, match_id: str) -> dict[str, Any] | None:
    cur = db.execute(
        "SELECT status, times_processed, rows_written, error_reason, attempt"
        " FROM pewproc.matches WHERE match_id = %s", (match_id,))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("status", "times_processed", "rows_written", "error_reason", "attempt"),
                    row, strict=True))


def expected_rows(settings: Settings, path: Path, match_id: str) -> dict[str, int]:
    """Rows of every output table a match must end with: what a worker derives from the file."""
    from pewproc.processing import extract_file
    from pewproc.telemetry.extract import output_tables

    found = extract_file(path, match_id, settings)["rows"]
    return {table.name: found.get(table.name, 0) for table in output_tables()}


def stored_rows(db: psycopg.Connection, match_id: str, schema: str = "pewproc"
                ) -> dict[str, int]:
    """Rows stored for a match in every output table."""
    from pewproc.telemetry.extract import output_tables

    return {table.name: db.execute(f"SELECT count(*) FROM {schema}.{table.name}"
                                   " WHERE match_id = %s", (match_id,)).fetchone()[0]
            for table in output_tables()}


def count_rows(db: psycopg.Connection, table: str, match_id: str) -> int:
    return db.execute(f"SELECT count(*) FROM pewproc.{table} WHERE match_id = %s",
                      (match_id,)).fetchone()[0]


@contextlib.contextmanager
def hold_match_lock(settings: Settings, match_id: str) -> Iterator[None]:
    """Hold the lock a match's write takes, so that a task on that match waits for the test."""
    conn = psycopg.connect(settings.conninfo)
    try:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
                     (match_id, _LOCK_SEED))
        yield
    finally:
        with contextlib.suppress(psycopg.OperationalError):  # the server may be gone by now
            conn.rollback()
        conn.close()


@contextlib.contextmanager
def task_in_flight(settings: Settings, match_id: str, path: Path) -> Iterator[None]:
    """Publish a match and keep its task parked in its write until the block ends: a task in
    flight at a moment the test chooses."""
    with hold_match_lock(settings, match_id):
        publish(settings, [message_for(match_id, path)])
        wait_for(lambda: lock_waiters(settings) == 1, 60, f"the task of {match_id} in flight")
        yield


def lock_waiters(settings: Settings) -> int:
    """How many sessions wait on an advisory lock: tasks parked by `hold_match_lock`."""
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0]


@contextlib.contextmanager
def stopped(service: Any) -> Iterator[None]:
    """Stop a service (the test broker, a private PostgreSQL) and start it again whatever
    happens, so that one failing test cannot leave it down for every later test."""
    service.stop()
    try:
        yield
    finally:
        service.start()


class RunningWorker:
    """A worker process, its JSON log, and the means to stop it."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self._log = JsonLog(log_path)

    @classmethod
    def start(cls, settings: Settings, log_path: Path, args: tuple[str, ...],
              env: dict[str, str]) -> RunningWorker:
        full_env = {**os.environ, **settings.to_env(), **env}
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "pewproc.parallel_worker", *args],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return cls(process, log_path)

    def log_records(self) -> list[dict[str, Any]]:
        self._log.poll()
        return list(self._log.records)

    def outcomes(self) -> list[dict[str, Any]]:
        """The per-match log records, one per settled delivery."""
        return [r for r in self.log_records() if "action" in r and "match_id" in r]

    def wait_outcomes(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The per-match records, once `count` deliveries have been settled and logged."""
        return wait_for(lambda: len(self.outcomes()) >= count and self.outcomes(), timeout,
                        f"{count} settled deliveries")

    def wait_consuming(self, timeout: float = 60.0) -> None:
        wait_for(lambda: any(r["message"].startswith("consuming") for r in self.log_records())
                 or self._dead(), timeout, "the worker to start consuming")
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]

    def _dead(self) -> bool:
        return self.process.poll() is not None

    def terminate(self, timeout: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Kill the worker's whole process group, even if its main process is already gone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def group_alive(self) -> list[int]:
        """Processes still in the worker's process group (its fork server, children...)."""
        out = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split() if _state(int(p)) not in ("Z", "")]

    def pool_children(self) -> list[int]:
        """Pids of the pool's children: processes forked by the worker's fork server."""
        servers = [p for p in _children(self.process.pid) if b"forkserver" in _cmdline(p)]
        return sorted(child for server in servers for child in _children(server))


def run_obeying_file_modes(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` in a process that obeys file modes. Root reads everything, so as root
    the process gives up the capabilities that override modes (util-linux's setpriv)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root reads any file, and setpriv (util-linux) is not here to prevent it")
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, "--bounding-set", drop, "--inh-caps", drop]
    return subprocess.run([*prefix, sys.executable, "-c", code, *args], capture_output=True,
                          text=True, check=False)


def nested_tables(depth: int) -> bytes:
    """The wire form of a table nested `depth` deep, {"k": {"k": ... {}}}."""
    value = b"F" + struct.pack(">I", 0)
    for _ in range(depth):
        entry = b"\x01k" + value
        value = b"F" + struct.pack(">I", len(entry)) + entry
    return value


def process_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    return _state(pid) not in ("Z", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1; (0, "") if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                         check=False).stdout
    return [int(p) for p in out.split()]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class WorkerLauncher(Protocol):
    def __call__(self, settings: Settings, *args: str, **env: str) -> RunningWorker: ...


@contextlib.contextmanager
def own_schema(settings: Settings) -> Iterator[Settings]:
    """Settings pointing at a freshly migrated schema of their own, dropped afterwards: for tests
    that select from whole tables, which other tests' matches would otherwise share."""
    from pewproc.storage.migrate import migrate

    schema = f"t_{os.urandom(5).hex()}"
    settings = settings.replace(postgres_schema=schema)
    migrate(settings.conninfo, schema)
    try:
        yield settings
    finally:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
