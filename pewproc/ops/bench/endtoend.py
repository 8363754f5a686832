"""End to end: a real worker process, batches published to it, throughput from its log."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pewproc.ops.jsonlog import JsonLog
from pewproc.settings import Settings


class BenchError(click.ClickException):
    """The benchmark could not measure what it set out to (a worker failed, a match failed...)."""


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
        "fallbacks": sum(1 for r in records if r.get("decode_path") == "general"),
    }
