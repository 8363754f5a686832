"""Prometheus metrics, all recorded in the parent from the results children send back.

Children keep no metrics state (no multiprocess files to clean up). The names the worker pewproc
replaces exposed are kept where the meaning is the same.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pewproc.fate import Fate
from pewproc.processing import TaskResult

# Matches take from about 0.1 s (small custom games) to a minute (huge files on a busy machine).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_OUTCOME_OF_ACTION = {"retry": "retried", "dead_letter": "dead_lettered", "reject": "rejected"}

# Label values known in advance, exported at 0 from the start: a series that appears only with
# its first event hides that event from rate() and increase(), so alerts would miss it.
OUTCOMES = ("completed", "skipped", "retried", "dead_lettered", "rejected")
TELEMETRY_STATUSES = ("completed", "skipped", "failed")
RESTART_REASONS = ("child_lost", "timeout", "pool_stalled", "recycled")
COPY_FALLBACKS = ("refused", "minimal_dead_letter", "rejected")
# The reasons of docs/reliability.md's table of fates.
PERMANENT_REASONS = (
    "invalid_json", "invalid_message", "message_too_large", "file_missing", "outside_root",
    "file_unreadable", "file_too_large", "truncated", "telemetry_not_json", "corrupt_gzip",
    "json_too_large", "not_event_list", "too_many_events", "not_a_match", "unstorable_data",
    "processing_error", "out_of_memory", "settlement_crashed", "delivery_crashed",
)
TRANSIENT_REASONS = (
    "file_permission_denied", "file_incomplete", "database_unavailable", "database_resources",
    "database_timeout", "database_conflict", "database_schema", "database_error",
    "tracked_players_unavailable", "child_lost", "timeout", "pool_stalled",
)
DEAD_LETTER_REASONS = (*PERMANENT_REASONS,
                       *(f"retries_exhausted:{reason}" for reason in TRANSIENT_REASONS))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "queue_messages_processed", "Messages settled, by outcome "
            "(completed, skipped, retried, dead_lettered).", ["outcome"], registry=r)
        self.duration = Histogram(
            "queue_processing_duration_seconds", "Time from delivery to settlement of a message.",
            buckets=DURATION_BUCKETS, registry=r)
        self.stage_duration = Histogram(
            "pewproc_stage_duration_seconds", "Wall time of one processing stage in a child.",
            ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.telemetry = Counter(
            "telemetry_processed", "Telemetry files processed, by status.", ["status"], registry=r)
        self.events = Counter(
            "telemetry_events_extracted", "Events parsed from telemetry files.", registry=r)
        self.decoded = Counter(
            "pewproc_telemetry_decoded", "Telemetry files parsed, by decoding path: typed, or "
            "general for files whose shapes do not fit the typed one (the fallback).", ["path"],
            registry=r)
        self.rows = Counter(
            "pewproc_rows_written", "Rows written, by table.", ["table"], registry=r)
        self.errors = Counter(
            "worker_errors", "Failed attempts, by reason.", ["reason"], registry=r)
        self.dead_letters = Counter(
            "pewproc_dead_letters", "Messages dead-lettered, by reason.", ["reason"], registry=r)
        self.in_flight = Gauge(
            "pewproc_in_flight_tasks", "Deliveries handed to the pool and not yet settled.",
            registry=r)
        self.pool_size = Gauge("pewproc_pool_size", "Child processes in the pool.", registry=r)
        self.child_restarts = Counter(
            "pewproc_child_restarts", "Pool generations replaced, by reason "
            "(child_lost, timeout, recycled).", ["reason"], registry=r)
        self.broker_connected = Gauge(
            "pewproc_broker_connected", "1 while connected to the broker and consuming.",
            registry=r)
        self.reconnects = Counter(
            "pewproc_broker_reconnects", "Connections to the broker re-established.", registry=r)
        self.queue_messages = Gauge(
            "pewproc_queue_messages", "Messages ready in a queue (polled).", ["queue"], registry=r)
        self.queue_consumers = Gauge(
            "pewproc_queue_consumers", "Consumers of a queue (polled).", ["queue"], registry=r)
        self.copy_fallbacks = Counter(
            "pewproc_copy_fallbacks", "Copies that could not be published as they were, by what "
            "happened: refused (a nack; tried again later), minimal_dead_letter, rejected.",
            ["kind"], registry=r)
        self.settle_crashes = Counter(
            "pewproc_settle_crashes", "Deliveries whose settlement raised; each is dead-lettered "
            "minimally, now and if it comes back.", registry=r)
        self.publish_blocked = Gauge(
            "pewproc_broker_publish_blocked", "1 while a copy has waited over 5 s for the "
            "broker's confirmation (a memory or disk alarm blocks publishers).", registry=r)
        self.last_success = Gauge(
            "pewproc_last_success_timestamp_seconds", "Unix time of the last completed match.",
            registry=r)

        for counter, values in ((self.messages, OUTCOMES), (self.telemetry, TELEMETRY_STATUSES),
                                (self.child_restarts, RESTART_REASONS),
                                (self.copy_fallbacks, COPY_FALLBACKS),
                                (self.decoded, ("typed", "general")),
                                (self.errors, (*PERMANENT_REASONS, *TRANSIENT_REASONS)),
                                (self.dead_letters, DEAD_LETTER_REASONS)):
            for value in values:
                counter.labels(value)

    def record(self, result: TaskResult, fate: Fate, seconds: float) -> None:
        outcome = _OUTCOME_OF_ACTION.get(fate.action, result.outcome)
        self.messages.labels(outcome).inc()
        self.duration.observe(seconds)
        for stage, value in result.stages.items():
            if stage != "total":
                self.stage_duration.labels(stage).observe(value)
        self.events.inc(result.events)
        if result.decode_path is not None:
            self.decoded.labels(result.decode_path).inc()
        for table, count in result.rows.items():
            self.rows.labels(table).inc(count)
        if result.ok:
            self.telemetry.labels(result.outcome).inc()
            if result.outcome == "completed":
                self.last_success.set(time.time())
        else:
            self.errors.labels(result.reason or "unknown").inc()
            if fate.action == "dead_letter":
                self.telemetry.labels("failed").inc()
                self.dead_letters.labels(fate.headers.get("x-pewproc-reason", "unknown")).inc()
