"""Processing one delivery, from message bytes to committed rows: the work a child does.

Everything here runs in a pool child (or, in sequential mode, in a thread of the main process)
and never touches the broker. It returns a `TaskResult` instead of raising, so that the outcome,
the error class and the stage timings cross the process boundary as plain data, and the parent
alone decides the message's fate and records metrics.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from pewproc.errors import PermanentError, TransientError
from pewproc.message import MatchMessage, decode_message, peek_match_id
from pewproc.settings import Settings
from pewproc.storage.sqlstate import classify_database_error, describe_database_error
from pewproc.storage.tracked import TrackedPlayers
from pewproc.storage.writer import record_unsuccessful, store_match
from pewproc.telemetry.collectors.match import is_match, match_kind_of
from pewproc.telemetry.extract import extract, output_tables
from pewproc.telemetry.model import MatchContext
from pewproc.telemetry.reader import ReadLimits, ReadResult, read_telemetry, resolve_inside
from pewproc.telemetry.version import EXTRACTOR_VERSION
from pewproc.text import short_id

log = logging.getLogger(__name__)

STAGES = ("read", "decompress", "parse", "extract", "write")


@dataclass
class TaskResult:
    """What one attempt at one message came to; small and picklable."""

    outcome: str  # completed | skipped | failed
    match_id: str | None = None
    retryable: bool = False
    reason: str | None = None
    error: str | None = None
    error_class: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    cpu_seconds: float = 0.0
    events: int = 0
    decode_path: str | None = None  # typed | general (the file did not fit the typed shapes)
    rows: dict[str, int] = field(default_factory=dict)
    pid: int = 0
    started_at: float = 0.0  # time.time(), so intervals compare across processes
    ended_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("completed", "skipped")


class Processor:
    """Owns what a process keeps between tasks: its settings and its database pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = ReadLimits.of(settings)
        self.kinds = settings.match_kind_set
        self.tracked = TrackedPlayers(settings)
        self.tables = output_tables()
        keep_freed_memory()
        self.db = psycopg_pool.ConnectionPool(
            settings.conninfo,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            open=True,
            name=f"pewproc-{os.getpid()}",
            # pg_stat_activity then shows which process holds each session.
            kwargs={"application_name": f"pewproc-{os.getpid()}"},
            timeout=settings.db_pool_timeout,
            reconnect_timeout=60.0,
            check=psycopg_pool.ConnectionPool.check_connection,
        )

    def close(self) -> None:
        self.db.close()

    def process(self, body: bytes, attempt: int) -> TaskResult:
        with garbage_collector_paused():
            return self._attempt(body, attempt)

    def _attempt(self, body: bytes, attempt: int) -> TaskResult:
        result = TaskResult(outcome="failed", pid=os.getpid(), started_at=time.time())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        message: MatchMessage | None = None
        try:
            message = decode_message(body, self.settings.max_message_bytes)
            result.match_id = message.match_id
            self._process(message, attempt, result)
        except PermanentError as exc:
            result.match_id = result.match_id or peek_match_id(body)
            self._fail(result, exc, retryable=False)
        except TransientError as exc:
            self._fail(result, exc, retryable=True)
        except psycopg.Error as exc:  # PoolTimeout included: no connection in time
            fate = classify_database_error(exc)
            self._fail(result, exc, retryable=fate.retryable, reason=fate.reason,
                       error=describe_database_error(exc))
        except ConnectionError as exc:
            self._fail(result, exc, retryable=True, reason="connection")
        except MemoryError as exc:
            self._fail(result, exc, retryable=False, reason="out_of_memory")
        except Exception as exc:  # a bug or a shape of telemetry nobody foresaw
            log.exception("unexpected error processing %s", result.match_id)
            self._fail(result, exc, retryable=False, reason="processing_error")
        final = not result.retryable or attempt > self.settings.max_retries
        if result.outcome == "failed" and final and message is not None:
            self._record_failure(message, attempt, result)
        result.cpu_seconds = time.process_time() - cpu0
        result.stages.setdefault("total", time.perf_counter() - wall0)
        result.ended_at = time.time()
        return result

    def _process(self, message: MatchMessage, attempt: int, result: TaskResult) -> None:
        wall0 = time.perf_counter()
        path = resolve_inside(message.file_path, self.settings.telemetry_root)
        read = read_telemetry(path, self.limits)
        result.events = len(read.events)
        result.decode_path = read.decode_path
        result.stages.update(_read_stages(read))
        if not is_match(read.events):
            raise PermanentError(
                f"{len(read.events)} events without both LogMatchDefinition and LogMatchStart: "
                "not the telemetry of a match", "not_a_match")
        kind = message.game_type or match_kind_of(read.events)
        base = {
            "file_path": message.file_path,
            "attempt": attempt,
            "worker_id": self.settings.worker_name,
            "match_kind": kind,
            "map_name": message.map_name,
            "game_mode": message.game_mode,
            "event_count": len(read.events),
            **_provenance(message),
        }
        if self.kinds is not None and kind not in self.kinds:
            result.outcome, result.reason = "skipped", f"match kind {kind!r} not processed"
            t0 = time.perf_counter()
            with self.db.connection() as conn:
                record_unsuccessful(conn, message.match_id, "skipped", "kind_not_processed",
                                    result.reason, base)
            result.stages["write"] = time.perf_counter() - t0
            return
        tracked = self.tracked.current(self.db.connection)
        t0 = time.perf_counter()
        extraction = extract(read.events, MatchContext(message.match_id, tracked))
        result.stages["extract"] = time.perf_counter() - t0
        fields = {**base, **{k: v for k, v in extraction.summary.items() if v is not None}}
        t0 = time.perf_counter()
        fields["processing_s"] = t0 - wall0
        with self.db.connection() as conn:
            store_match(conn, message.match_id, fields, self.tables, extraction.tables)
        result.stages["write"] = time.perf_counter() - t0
        result.rows = extraction.row_counts()
        result.outcome = "completed"

    @staticmethod
    def _fail(result: TaskResult, exc: BaseException, *, retryable: bool,
              reason: str | None = None, error: str | None = None) -> None:
        result.outcome = "failed"
        result.retryable = retryable
        result.reason = reason or getattr(exc, "reason", None) or type(exc).__name__
        result.error = (error or str(exc))[:2000] or type(exc).__name__
        result.error_class = f"{type(exc).__module__}.{type(exc).__qualname__}"

    def _record_failure(self, message: MatchMessage, attempt: int, result: TaskResult) -> None:
        """Mark the match failed (or note the failure beside an earlier success); best effort,
        the dead letter keeps the truth."""
        reason = f"retries_exhausted:{result.reason}" if result.retryable else result.reason
        fields = {"file_path": message.file_path, "attempt": attempt,
                  "worker_id": self.settings.worker_name, **_provenance(message)}
        try:
            with self.db.connection() as conn:
                record_unsuccessful(conn, message.match_id, "failed", reason, result.error,
                                    fields)
        except psycopg.Error as exc:
            log.warning("could not record the failure of match %s: %s",
                        short_id(message.match_id), describe_database_error(exc))


def _provenance(message: MatchMessage) -> dict[str, Any]:
    """What every matches row records of how it was made: the code's extractor version and
    the message, for `pewproc reprocess`."""
    return {"extractor_version": EXTRACTOR_VERSION, "message": Jsonb(message.to_dict())}


def keep_freed_memory() -> None:
    """Keep the memory a match freed for the next match instead of handing it back to the kernel.

    glibc gives large blocks (the inflated JSON, tens of megabytes) back to the kernel when they
    are freed, and trims the heap's free top; the next match then faults in, and the kernel
    zeroes, every page again: 7,000 to 15,000 page faults, 20-40 ms of a 48,000-event match.
    With blocks up to 1 GiB taken from the heap and no trimming, a process keeps its heap at the
    size its largest match needed (the buffers a gunzip grows through included): the peak is the
    same, it is just not given back between matches. Without glibc this does nothing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@contextlib.contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """Parsing a match creates some 300,000 dicts and lists, and each allocation threshold
    crossed starts a collection that walks them all: over half the cost of `orjson.loads`, for
    nothing, since parsed JSON holds no reference cycles and reference counting frees it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# The process-wide processor of a pool child, and its pipe to the parent, from the initializer.
_child: Processor | None = None
_starts: Connection | None = None


def init_child(settings: Settings, parent_pid: int, starts: Connection) -> None:
    """Executor initializer: runs once in each child, after the fork, before any task.

    `starts` is the pipe on which the child tells the parent each task it starts."""
    import multiprocessing.util
    import signal
    import threading

    global _child, _starts
    _starts = starts
    # Ctrl-C reaches the whole process group; the parent handles it and drains us. SIGTERM keeps
    # its default: the executor terminates children with it when the pool breaks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pewproc.ops.logs import configure_logging

    configure_logging(settings)
    _child = Processor(settings)
    multiprocessing.util.Finalize(None, _child.close, exitpriority=10)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True,
                     name="pewproc-orphan-watch").start()


def _exit_when_orphaned(parent_pid: int, interval: float = 1.0) -> None:
    """Exit if the worker's main process is gone (SIGKILL, OOM killer).

    Children wait for work on a pipe that every sibling also holds open, so the death of the
    main process alone never wakes them: without this they would idle forever, each holding a
    database connection. Their unfinished message is the broker's to redeliver.
    """
    while True:
        time.sleep(interval)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(70)
        except PermissionError:
            pass  # alive, under another user


def run_in_child(task_id: int, body: bytes, attempt: int) -> TaskResult:
    """The function submitted to the executor. Saying "started" first lets the parent time the
    task from now, not from when it was queued (one small write: atomic on a pipe)."""
    assert _child is not None and _starts is not None, "init_child did not run in this process"
    _starts.send(task_id)
    return _child.process(body, attempt)


def extract_file(path: Path, match_id: str, settings: Settings) -> dict[str, Any]:
    """Read and extract one file with no broker and no database: for `pewproc process`."""
    limits = ReadLimits.of(settings)
    with garbage_collector_paused():
        read = read_telemetry(path, limits)
        tracked = TrackedPlayers(settings).current(lambda: psycopg.connect(settings.conninfo))
        t0 = time.perf_counter()
        extraction = extract(read.events, MatchContext(match_id, tracked))
    stages = {**_read_stages(read), "extract": time.perf_counter() - t0}
    return {"match_id": match_id, "events": len(read.events), "rows": extraction.row_counts(),
            "decode_path": read.decode_path, "stages": stages, "summary": extraction.summary}


def _read_stages(read: ReadResult) -> dict[str, float]:
    return {"read": read.read_seconds, "decompress": read.decompress_seconds,
            "parse": read.parse_seconds}
