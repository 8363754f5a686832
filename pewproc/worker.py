"""The worker: one single-threaded pika consumer feeding the pool, and settling every message.

The consumer's thread owns the connection and never waits on a task. Each delivery is submitted
to the pool; when its future ends, the executor's thread schedules `_settle` on the connection's
thread with `add_callback_threadsafe`, and only there is the message acked, retried or
dead-lettered. Delivery tags are only valid on the channel that delivered them, so each session
keeps the set of its own tags, and a result for any other tag is dropped: the broker has already
requeued that message, and processing it again changes nothing.

Retry and dead-letter copies are published by the `Copier`'s thread on a connection of its own,
so that a broker blocking publishers never blocks this loop. If settling a delivery raises, the
delivery is remembered and, now and whenever it comes back, only dead-lettered minimally: no
message can crash the loop twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from pewproc import failpoints, startup
from pewproc.broker.connection import connect, describe
from pewproc.broker.copier import Copier, CopyOutcome, CopyRequest
from pewproc.broker.deadletters import copy_properties, message_id_of
from pewproc.broker.topology import NOT_FOUND, all_queues, declare_queue, declare_topology
from pewproc.fate import Fate, attempt_of, decide, lost_child_result, minimal_dead_letter
from pewproc.message import peek_match_id
from pewproc.ops.metrics import Metrics
from pewproc.pool import InlinePool, TaskFuture, WorkerPool, make_pool
from pewproc.processing import TaskResult
from pewproc.settings import Settings
from pewproc.text import short_id

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # how often the loop looks at signals, time limits and the pool
RECONNECT_DELAYS = (1, 2, 5, 10, 30)  # seconds; the last repeats for as long as it takes
BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)
PUBLISH_STALL_SECONDS = 5.0  # a copy unconfirmed this long means the broker blocks publishers
_REMEMBERED_CRASHES = 10_000  # deliveries whose settlement raised, kept to dead-letter on return
_BEFORE_ACK = {  # the crash window each fate's ack closes
    "ack": failpoints.AFTER_COMMIT_BEFORE_ACK,
    "retry": failpoints.AFTER_RETRY_COPY_BEFORE_ACK,
    "dead_letter": failpoints.AFTER_DEAD_LETTER_BEFORE_ACK,
}


class ConsumerCancelled(Exception):
    """The broker ended our subscription (its queue was deleted, or a node went down)."""


@dataclass(eq=False)
class Delivery:
    session: int
    tag: int
    body: bytes
    properties: pika.BasicProperties
    attempt: int
    redelivered: bool
    received: float

    @property
    def key(self) -> str:
        """Names the message across redeliveries, for the crash guard."""
        digest = hashlib.sha256(self.body)
        digest.update(str(self.properties.message_id).encode("utf-8", "replace"))
        # The headers too: a replay or a clean re-publish of the same body is another message.
        digest.update(repr(self.properties.headers).encode("utf-8", "replace"))
        return digest.hexdigest()


def run_worker(settings: Settings) -> int:
    """Everything `pewproc worker` does: schema, metrics server, then consume until stopped."""
    from pewproc.ops.health import HealthState, serve

    metrics = Metrics()
    health = HealthState(settings.conninfo, stall_after=max(30.0, 4 * TICK_SECONDS),
                         broker=f"the broker at {settings.broker_address}")
    server = (serve(settings.metrics_addr, settings.metrics_port, metrics.registry, health)
              if settings.metrics_port else None)
    try:
        worker = Worker(settings, metrics, health)
        worker.install_signal_handlers()
        def still_waiting() -> bool:
            health.beat()  # waiting for the database at start is being alive
            return worker.stop_requested

        for dependency in (startup.database(settings), startup.broker(settings)):
            if not startup.wait_for(dependency, settings.startup_timeout, still_waiting,
                                    lambda text: setattr(health, "waiting_for", text)):
                return 0
        return worker.run()
    except startup.StartupFailed as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        if server is not None:
            server.shutdown()


class Worker:
    """Consumes the work queue until stopped; `run` returns the process exit code."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None,
                 health: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.health = health
        self.pool: WorkerPool | InlinePool | None = None
        self.copier = Copier(settings, self.metrics.copy_fallbacks.labels("refused").inc)
        self._crashed: OrderedDict[str, None] = OrderedDict()
        self._session = 0
        self._tags: set[int] = set()
        self._in_flight: dict[TaskFuture, Delivery] = {}
        self._abandoned: set[TaskFuture] = set()
        self._stop_requested = False
        self._failures = 0  # connection attempts failed in a row
        self._connected_once = False  # failures before the first success are not "lost"
        self._stop_deadline = float("inf")
        self._stats = _Stats()

    # Lifecycle

    def run(self) -> int:
        self.copier.start()
        self.pool = make_pool(self.settings, on_restart=self._on_pool_restart)
        self.metrics.pool_size.set(self.pool.size)
        children = self.pool.warm_up()
        log.info(
            "pewproc worker %s starting: mode=%s pool_size=%d prefetch=%d queue=%s broker=%s "
            "children=%s",
            self.settings.worker_name, self.settings.processing_mode, self.pool.size,
            self.settings.prefetch, self.settings.work_queue, describe(self.settings),
            children or "none",
        )
        try:
            while not self._stop_requested:
                try:
                    self._consume()
                except Exception as exc:
                    self._set_connected(False)
                    delay = RECONNECT_DELAYS[min(self._failures, len(RECONNECT_DELAYS) - 1)]
                    self._failures += 1
                    if isinstance(exc, (*BROKER_ERRORS, ConsumerCancelled)):
                        log.error("%s %s (%s: %s); reconnecting in %d s",
                                  "broker connection lost:" if self._connected_once
                                  else "cannot connect to the broker at",
                                  self.settings.broker_address, type(exc).__name__,
                                  startup.one_line(exc), delay)
                    else:  # a bug: keep the worker up, start the loop afresh
                        log.exception("unexpected error in the consumer loop; restarting it in "
                                      "%d s", delay)
                    self._sleep(delay)
                    if not self._stop_requested:
                        self.metrics.reconnects.inc()
        finally:
            self.copier.stop()
            unfinished = self.pool.in_flight
            self.pool.shutdown(wait=not unfinished)
            log.info("pewproc worker %s stopped (%s)", self.settings.worker_name,
                     f"{unfinished} unfinished, left to the broker to redeliver" if unfinished
                     else "drained")
        return 0

    def request_stop(self) -> None:
        if not self._stop_requested:
            self._stop_requested = True
            self._stop_deadline = time.monotonic() + self.settings.shutdown_timeout
            log.info("stopping: no new messages; waiting up to %.0f s for %d unsettled",
                     self.settings.shutdown_timeout, len(self._tags))

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stop_requested:
                log.warning("second %s: exiting at once", signal.Signals(signum).name)
                if self.pool is not None:
                    self.pool.shutdown(wait=False)  # kills the children: no orphans
                os._exit(1)
            self.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # One connection's life

    def _consume(self) -> None:
        connection = connect(self.settings)
        self._session += 1
        self._tags = set()
        try:
            channel = declare_topology(connection, self.settings)
            channel.basic_qos(prefetch_count=self.settings.prefetch)
            on_message = functools.partial(self._on_delivery, self._session, connection)
            consumer_tag: str | None = channel.basic_consume(
                self.settings.work_queue, on_message
            )
            cancelled: list[object] = []
            channel.add_on_cancel_callback(cancelled.append)
            self._set_connected(True)
            self._connected_once = True
            self._failures = 0  # the backoff starts afresh after every good connection
            log.info("consuming %s (session %d)", self.settings.work_queue, self._session)
            while True:
                connection.process_data_events(time_limit=TICK_SECONDS)
                if cancelled:
                    raise ConsumerCancelled(f"the broker cancelled our consumer of "
                                            f"{self.settings.work_queue} (queue deleted?)")
                self._tick(connection, channel)
                if self._stop_requested:
                    if consumer_tag is not None:
                        channel.basic_cancel(consumer_tag)
                        consumer_tag = None
                    if not self._tags or time.monotonic() >= self._stop_deadline:
                        break
        finally:
            self._set_connected(False)
            self._close(connection)
            # The broker requeues whatever this channel had not settled; forget those tasks.
            self._in_flight.clear()
            self._abandoned.clear()
            self.metrics.in_flight.set(0)

    def _on_delivery(self, session: int, connection: pika.BlockingConnection,
                     channel: BlockingChannel, method: Any, properties: pika.BasicProperties,
                     body: bytes) -> None:
        assert self.pool is not None
        delivery = Delivery(
            session, method.delivery_tag, body, properties, attempt_of(properties.headers),
            bool(method.redelivered), time.monotonic(),
        )
        if self._stop_requested:
            # Sent before our cancel reached the broker (the stop is asked for from a signal
            # handler, and the consumer is cancelled at the end of the current tick): hand it
            # back untouched, for the next worker.
            channel.basic_reject(delivery.tag, requeue=True)
            log.info("delivery %d arrived while stopping; returned to the queue", delivery.tag)
            return
        self._tags.add(delivery.tag)
        if delivery.key in self._crashed:
            log.error("delivery %d crashed its settlement before; dead-lettering it minimally "
                      "without processing", delivery.tag)
            self._dead_letter_minimally(connection, channel, delivery, "settlement_crashed")
            return
        try:
            self._start(connection, channel, delivery)
        except BROKER_ERRORS:
            raise
        except Exception:
            self._crash_guard(connection, channel, delivery, "delivery")

    def _start(self, connection: pika.BlockingConnection, channel: BlockingChannel,
               delivery: Delivery) -> None:
        assert self.pool is not None
        future = self.pool.submit(delivery.body, delivery.attempt)
        self._in_flight[future] = delivery
        self.metrics.in_flight.set(len(self._in_flight))
        settle = functools.partial(self._settle, connection, channel, delivery)
        future.add_done_callback(
            functools.partial(_schedule_on_connection_thread, connection, settle)
        )

    def _settle(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                delivery: Delivery, future: TaskFuture, result: TaskResult | None = None) -> None:
        """Runs on the connection's thread: decide the message's fate and apply it."""
        self._in_flight.pop(future, None)
        self.metrics.in_flight.set(len(self._in_flight))
        if future in self._abandoned:
            self._abandoned.discard(future)
            return  # settled already, when it passed the time limit
        if not self._current(delivery):
            log.info("dropping the result of delivery %d of an old channel; the broker has "
                     "requeued it", delivery.tag)
            return
        try:
            if result is None:
                try:
                    result = future.result()
                except Exception as exc:  # the child died: BrokenProcessPool, or worse
                    result = lost_child_result(exc, "child_lost", delivery.body)
            fate = decide(result, delivery.attempt, delivery.properties.headers, self.settings)
            if fate.action == "ack":
                self._finish(channel, delivery, result, fate, "published")
                return
            fallback = minimal_dead_letter(result.reason or "unknown", delivery.body,
                                           self.settings)
            self.copier.submit(CopyRequest(
                fate, fallback, delivery.body,
                copy_properties(delivery.properties, delivery.body),
                functools.partial(self._current, delivery),
                self._on_copy_thread(connection, channel, delivery, result, fate, fallback),
            ))
        except BROKER_ERRORS:
            raise
        except Exception:
            self._crash_guard(connection, channel, delivery, "settlement")

    def _finish(self, channel: BlockingChannel, delivery: Delivery, result: TaskResult,
                fate: Fate, outcome: CopyOutcome) -> None:
        """Ack (or, if no copy could be published, reject) the original, then account for it."""
        if outcome == "dropped" or not self._current(delivery):
            log.info("delivery %d belongs to an old channel; the broker has requeued it",
                     delivery.tag)
            return
        if outcome == "unpublishable":
            channel.basic_reject(delivery.tag, requeue=False)
            fate = Fate("reject")
            self.metrics.copy_fallbacks.labels("rejected").inc()
            log.error("match %s: no copy could be published; the delivery is rejected without "
                      "requeue (lost unless the work queue has a dead-letter policy)",
                      short_id(result.match_id))
        else:
            failpoints.hit(_BEFORE_ACK[fate.action])
            channel.basic_ack(delivery.tag)
            if outcome == "minimal":
                self.metrics.copy_fallbacks.labels("minimal_dead_letter").inc()
        self._tags.discard(delivery.tag)
        seconds = time.monotonic() - delivery.received
        self.metrics.record(result, fate, seconds)
        self._stats.count(result, fate)
        _log_outcome(result, fate, delivery, seconds)

    def _on_copy_thread(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                        delivery: Delivery, result: TaskResult, fate: Fate, fallback: Fate
                        ) -> functools.partial[None]:
        """The copier's `done`: hands the outcome back to this thread."""
        finish = functools.partial(self._guarded_finish, connection, channel, delivery, result,
                                   fate, fallback)
        return functools.partial(_call_on_connection_thread, connection, finish)

    def _guarded_finish(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                        delivery: Delivery, result: TaskResult, fate: Fate, fallback: Fate,
                        outcome: CopyOutcome) -> None:
        """Finish on this thread; a minimal dead letter is accounted as what it was."""
        try:
            self._finish(channel, delivery, result, fallback if outcome == "minimal" else fate,
                         outcome)
        except BROKER_ERRORS:
            raise
        except Exception:
            self._crash_guard(connection, channel, delivery, "settlement")

    def _crash_guard(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                     delivery: Delivery, stage: str) -> None:
        """Settling this delivery raised: remember it, and dead-letter it minimally."""
        log.exception("unexpected error in the %s of delivery %d; dead-lettering it minimally",
                      stage, delivery.tag)
        self.metrics.settle_crashes.inc()
        self._crashed[delivery.key] = None
        while len(self._crashed) > _REMEMBERED_CRASHES:
            self._crashed.popitem(last=False)
        self._dead_letter_minimally(connection, channel, delivery, f"{stage}_crashed")

    def _dead_letter_minimally(self, connection: pika.BlockingConnection,
                               channel: BlockingChannel, delivery: Delivery, reason: str) -> None:
        fate = minimal_dead_letter(reason, delivery.body, self.settings)
        result = TaskResult(outcome="failed", match_id=peek_match_id(delivery.body), reason=reason,
                            error=reason)
        self.copier.submit(CopyRequest(
            fate, fate, delivery.body,
            pika.BasicProperties(message_id=message_id_of(delivery.properties.message_id,
                                                          delivery.body)),
            functools.partial(self._current, delivery),
            functools.partial(_call_on_connection_thread, connection, functools.partial(
                self._finish_minimal, channel, delivery, result, fate)),
        ))

    def _finish_minimal(self, channel: BlockingChannel, delivery: Delivery, result: TaskResult,
                        fate: Fate, outcome: CopyOutcome) -> None:
        self._finish(channel, delivery, result, fate,
                     "minimal" if outcome == "published" else outcome)

    def _current(self, delivery: Delivery) -> bool:
        """Whether the delivery can still be settled: its channel is the one consuming now."""
        return delivery.session == self._session and delivery.tag in self._tags

    # Housekeeping, between deliveries

    def _tick(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        assert self.pool is not None
        waiting = self.copier.waiting_seconds
        self.metrics.publish_blocked.set(int(waiting >= PUBLISH_STALL_SECONDS))
        if self.health is not None:
            self.health.beat()
            self.health.publish_wait = waiting
        for future, reason in self.pool.expired():
            delivery = self._in_flight.get(future)
            if delivery is not None:
                error = TimeoutError(
                    f"task ran past TASK_TIMEOUT_SECONDS={self.settings.task_timeout:g}"
                    if reason == "timeout" else "never started: the pool took no work while a "
                    "child sat idle (a stopped or wedged child?)"
                )
                self._settle(connection, channel, delivery, future,
                             lost_child_result(error, reason, delivery.body))
            self._abandoned.add(future)  # whatever its child does next is to be ignored
        self.pool.maintain()
        if self._stats.due(self.settings.stats_interval):
            self._report(connection)

    def _report(self, connection: pika.BlockingConnection) -> None:
        """Poll every queue's depth on a channel of its own: a missing queue (someone deleted it)
        closes that channel, never the consumer's, and is declared again."""
        depth: dict[str, int] = {}
        channel = connection.channel()
        try:
            for queue in all_queues(self.settings):
                try:
                    ok = channel.queue_declare(queue, passive=True).method
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code != NOT_FOUND:
                        raise
                    log.warning("queue %s is missing; declaring it again", queue)
                    declare_queue(connection, self.settings, queue)
                    channel = connection.channel()
                    continue
                depth[queue] = ok.message_count
                self.metrics.queue_messages.labels(queue).set(ok.message_count)
                self.metrics.queue_consumers.labels(queue).set(ok.consumer_count)
        finally:
            if channel.is_open:
                channel.close()
        assert self.pool is not None
        self._stats.log(len(self._tags), depth, self.pool.size)

    def _on_pool_restart(self, reason: str) -> None:
        self.metrics.child_restarts.labels(reason).inc()

    def _set_connected(self, connected: bool) -> None:
        self.metrics.broker_connected.set(int(connected))
        if self.health is not None:
            self.health.broker_connected = connected

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(TICK_SECONDS, deadline - time.monotonic()))
            if self.health is not None:
                self.health.beat()  # waiting on purpose is being alive
            if self.pool is not None:
                self.pool.maintain()

    @staticmethod
    def _close(connection: pika.BlockingConnection) -> None:
        try:
            if connection.is_open:
                connection.close()
        except BROKER_ERRORS:
            pass


def _schedule_on_connection_thread(connection: pika.BlockingConnection, settle: Any,
                                   future: TaskFuture) -> None:
    """Done-callback, on an executor thread: hand the settlement to the connection's thread."""
    _call_on_connection_thread(connection, settle, future)


def _call_on_connection_thread(connection: pika.BlockingConnection, callback: Any,
                               argument: Any) -> None:
    """From any thread: run `callback(argument)` on the connection's thread."""
    try:
        connection.add_callback_threadsafe(functools.partial(callback, argument))
    except (pika.exceptions.ConnectionWrongStateError, pika.exceptions.AMQPError, OSError):
        log.info("connection gone before a delivery was settled; the broker will redeliver it")


def _log_outcome(result: TaskResult, fate: Fate, delivery: Delivery, seconds: float) -> None:
    stages = " ".join(f"{k}={v:.3f}" for k, v in result.stages.items())
    rows = sum(result.rows.values())
    level = logging.INFO if result.ok else logging.WARNING
    log.log(
        level,
        "match %s attempt %d: %s -> %s%s in %.3f s (events=%d rows=%d %s)%s",
        short_id(result.match_id), delivery.attempt, result.outcome, fate.action,
        f" to {fate.queue}" if fate.queue else "", seconds, result.events, rows, stages,
        f" [{result.reason}: {result.error}]" if not result.ok or result.outcome == "skipped"
        else "",
        extra={
            "match_id": short_id(result.match_id) or None, "attempt": delivery.attempt,
            "outcome": result.outcome,
            "action": fate.action, "seconds": round(seconds, 4), "stages": result.stages,
            "rows": result.rows, "reason": result.reason, "pid": result.pid,
            "decode_path": result.decode_path,
            "started_at": result.started_at, "ended_at": result.ended_at,
        },
    )


class _Stats:
    """Counts for the periodic stats line."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.processed = self.failed = self.since_last = 0

    def count(self, result: TaskResult, fate: Fate) -> None:
        self.since_last += 1
        if fate.action == "ack":
            self.processed += 1
        else:
            self.failed += 1

    def due(self, interval: float) -> bool:
        return time.monotonic() - self.last >= interval

    def log(self, in_flight: int, depth: dict[str, int], pool_size: int) -> None:
        now = time.monotonic()
        rate = self.since_last / max(now - self.last, 1e-9)
        log.info(
            "stats: processed=%d failed=%d in_flight=%d rate=%.2f/s queue=%s pool_size=%d",
            self.processed, self.failed, in_flight, rate,
            " ".join(f"{q}:{n}" for q, n in depth.items()), pool_size,
            extra={"processed": self.processed, "failed": self.failed, "in_flight": in_flight,
                   "rate_per_s": round(rate, 3), "queue_depth": depth, "pool_size": pool_size},
        )
        self.last, self.since_last = now, 0
