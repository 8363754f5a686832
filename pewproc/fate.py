"""What happens to a message after an attempt: the retry and dead-letter policy, as pure functions.

Success and skips are acked. A permanent failure goes to the dead-letter queue at once. A
transient failure goes to the wait queue of its attempt's delay, which returns it to the work
queue when the delay expires; after `MAX_RETRIES` retries it goes to the dead-letter queue with
its history. pewproc's own headers carry the attempt count, since classic queues count nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pewproc.message import peek_match_id
from pewproc.processing import TaskResult
from pewproc.settings import Settings

ATTEMPT = "x-pewproc-attempt"
HISTORY = "x-pewproc-history"
REASON = "x-pewproc-reason"
ERROR = "x-pewproc-error"
ERROR_CLASS = "x-pewproc-error-class"
WORKER = "x-pewproc-worker-id"
FAILED_AT = "x-pewproc-failed-at"
MATCH_ID = "x-pewproc-match-id"

_HISTORY_LIMIT = 20  # entries kept, newest last
_ERROR_LIMIT = 500  # characters of an error kept in a header


@dataclass(frozen=True)
class Fate:
    action: str  # ack | retry | dead_letter
    queue: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    delay: int | None = None


def attempt_of(headers: dict[str, Any] | None) -> int:
    value = (headers or {}).get(ATTEMPT)
    return value if isinstance(value, int) and value >= 1 else 1


def decide(result: TaskResult, attempt: int, headers: dict[str, Any] | None,
           settings: Settings) -> Fate:
    if result.ok:
        return Fate("ack")
    now = datetime.now(UTC).isoformat()
    previous = (headers or {}).get(HISTORY)
    history = [*(previous if isinstance(previous, list) else []),
               f"{now} attempt {attempt} {result.reason}: {(result.error or '')[:200]}"]
    carried = {k: v for k, v in (headers or {}).items() if not k.startswith("x-pewproc-")}
    if result.retryable and attempt <= settings.max_retries:
        delays = settings.retry_delay_list
        delay = delays[min(attempt, len(delays)) - 1]
        return Fate(
            "retry",
            settings.retry_queue(delay),
            {**carried, ATTEMPT: attempt + 1, HISTORY: history[-_HISTORY_LIMIT:]},
            delay,
        )
    reason = result.reason or "unknown"
    if result.retryable:
        reason = f"retries_exhausted:{reason}"
    return Fate(
        "dead_letter",
        settings.dead_letter_queue,
        {
            **carried,
            REASON: reason,
            ERROR: (result.error or "")[:_ERROR_LIMIT],
            ERROR_CLASS: result.error_class or "",
            WORKER: settings.worker_name,
            FAILED_AT: now,
            ATTEMPT: attempt,
            MATCH_ID: result.match_id or "",
            HISTORY: history[-_HISTORY_LIMIT:],
        },
    )


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
