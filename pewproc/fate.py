"""What happens to a message after an attempt: the retry and dead-letter policy, as pure functions.

Success and skips are acked. A permanent failure goes to the dead-letter queue at once. A
transient failure goes to the wait queue of its attempt's delay, which returns it to the work
queue when the delay expires; after `MAX_RETRIES` retries it goes to the dead-letter queue with
its history. pewproc's own headers carry the attempt count, since classic queues count nothing.

Every header of a copy is bounded: pewproc's own are cut and escaped, and the headers carried
from the original are capped in total, so that a copy always encodes and always fits in one
frame, whatever the original carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pewproc.broker.fields import fit_headers
from pewproc.message import peek_match_id
from pewproc.processing import TaskResult
from pewproc.settings import Settings
from pewproc.text import printable, short_id

ATTEMPT = "x-pewproc-attempt"
HISTORY = "x-pewproc-history"
REASON = "x-pewproc-reason"
ERROR = "x-pewproc-error"
ERROR_CLASS = "x-pewproc-error-class"
WORKER = "x-pewproc-worker-id"
FAILED_AT = "x-pewproc-failed-at"
MATCH_ID = "x-pewproc-match-id"
DROPPED = "x-pewproc-dropped-headers"  # names of carried headers left off a copy
MINIMAL = "x-pewproc-minimal"  # a dead letter reduced to its body and reason

OWN_PREFIX = "x-pewproc-"
CARRIED_BUDGET = 16 * 1024  # bytes of the original's headers a copy carries at most
MAX_ATTEMPT = 10_000  # an attempt header above this is not ours: it counts as attempt 1
_HISTORY_LIMIT = 20  # entries kept, newest last
_HISTORY_ENTRY = 300  # characters of one history entry
_ERROR_LIMIT = 500  # characters of an error kept in a header
_NAME_LIMIT = 128  # characters of a worker id, error class or dropped header name


@dataclass(frozen=True)
class Fate:
    action: str  # ack | retry | dead_letter
    queue: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    delay: int | None = None


def attempt_of(headers: dict[str, Any] | None) -> int:
    """The attempt a delivery is on: pewproc's header if it is a plain int in a sane range, else 1.

    Other clients can send bools, doubles, huge or negative numbers and strings under any name;
    none of those may reach a bigint column or a header encoder.
    """
    value = (headers or {}).get(ATTEMPT)
    return value if type(value) is int and 1 <= value <= MAX_ATTEMPT else 1


def decide(result: TaskResult, attempt: int, headers: dict[str, Any] | None,
           settings: Settings, carried_budget: int = CARRIED_BUDGET) -> Fate:
    if result.ok:
        return Fate("ack")
    now = datetime.now(UTC).isoformat()
    headers = headers or {}
    previous = headers.get(HISTORY)
    history = [printable(entry, _HISTORY_ENTRY) for entry in
               (previous if isinstance(previous, list) else []) if isinstance(entry, str)]
    history.append(printable(
        f"{now} attempt {attempt} {result.reason}: {(result.error or '')[:200]}", _HISTORY_ENTRY))
    carried, dropped = fit_headers(
        {k: v for k, v in headers.items() if not (isinstance(k, str) and k.startswith(OWN_PREFIX))},
        carried_budget)
    if dropped:
        names = [printable(name, _NAME_LIMIT) for name in dropped[:_HISTORY_LIMIT]]
        if len(dropped) > _HISTORY_LIMIT:
            names.append(f"... and {len(dropped) - _HISTORY_LIMIT} more")
        carried[DROPPED] = names
    if result.retryable and attempt <= settings.max_retries:
        delays = settings.retry_delay_list
        delay = delays[min(attempt, len(delays)) - 1]
        return Fate(
            "retry",
            settings.retry_queue(delay),
            {**carried, ATTEMPT: attempt + 1, HISTORY: history[-_HISTORY_LIMIT:]},
            delay,
        )
    reason = printable(result.reason or "unknown", _NAME_LIMIT)
    if result.retryable:
        reason = f"retries_exhausted:{reason}"
    return Fate(
        "dead_letter",
        settings.dead_letter_queue,
        {
            **carried,
            REASON: reason,
            ERROR: printable(result.error or "", _ERROR_LIMIT),
            ERROR_CLASS: printable(result.error_class or "", _NAME_LIMIT),
            WORKER: printable(settings.worker_name, _NAME_LIMIT),
            FAILED_AT: now,
            ATTEMPT: attempt,
            MATCH_ID: short_id(result.match_id),
            HISTORY: history[-_HISTORY_LIMIT:],
        },
    )


def minimal_dead_letter(reason: str, body: bytes, settings: Settings) -> Fate:
    """The last copy worth trying when the full one cannot be published: the body and a reason,
    nothing the original carried."""
    return Fate("dead_letter", settings.dead_letter_queue, {
        REASON: printable(reason, _NAME_LIMIT),
        MATCH_ID: short_id(peek_match_id(body)),
        WORKER: printable(settings.worker_name, _NAME_LIMIT),
        FAILED_AT: datetime.now(UTC).isoformat(),
        MINIMAL: True,
    })


def lost_child_result(exc: BaseException, reason: str, body: bytes = b"") -> TaskResult:
    """The result of a task whose child died or hung: always worth another try."""
    return TaskResult(
        outcome="failed",
        match_id=peek_match_id(body),
        retryable=True,
        reason=reason,
        error=str(exc) or type(exc).__name__,
        error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
    )
