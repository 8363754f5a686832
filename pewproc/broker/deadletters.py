"""Reading and replaying the dead-letter queue, for `pewproc dlq`.

Dead letters are fetched with `basic_get` and left unacknowledged, so closing the channel puts
back every one that was only looked at, in its place. A replayed one is acked only after the
broker confirmed its copy on the work queue. Both walks stop after the messages that were in the
queue when they began, so a replayed match that fails again cannot make replay loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika

from pewproc import fate
from pewproc.broker.publisher import ConfirmingPublisher
from pewproc.message import peek_match_id
from pewproc.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    delivery_tag: int
    body: bytes
    headers: dict[str, Any]
    properties: pika.BasicProperties

    @property
    def match_id(self) -> str | None:
        return self.headers.get(fate.MATCH_ID) or peek_match_id(self.body)

    @property
    def reason(self) -> str:
        return str(self.headers.get(fate.REASON, "unknown"))

    def summary(self) -> dict[str, Any]:
        return {
            "match_id": self.match_id,
            "reason": self.reason,
            "error": self.headers.get(fate.ERROR),
            "error_class": self.headers.get(fate.ERROR_CLASS),
            "attempts": self.headers.get(fate.ATTEMPT),
            "failed_at": self.headers.get(fate.FAILED_AT),
            "worker_id": self.headers.get(fate.WORKER),
            "history": list(self.headers.get(fate.HISTORY) or []),
        }


def dead_letter_count(connection: pika.BlockingConnection, settings: Settings) -> int:
    channel = connection.channel()
    try:
        return channel.queue_declare(settings.dead_letter_queue, passive=True).method.message_count
    finally:
        channel.close()


def _walk(channel: Any, queue: str, limit: int | None) -> Iterator[DeadLetter]:
    """Dead letters present when the walk began, oldest first, each left unacked."""
    count = channel.queue_declare(queue, passive=True).method.message_count
    if limit is not None:
        count = min(count, limit)
    for _ in range(count):
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        yield DeadLetter(method.delivery_tag, body, dict(properties.headers or {}), properties)


def list_dead_letters(connection: pika.BlockingConnection, settings: Settings,
                      limit: int | None = None) -> list[DeadLetter]:
    channel = connection.channel()
    try:
        return list(_walk(channel, settings.dead_letter_queue, limit))
    finally:
        channel.close()  # everything goes back, in order


def replay_dead_letters(
    connection: pika.BlockingConnection,
    settings: Settings,
    wanted: Callable[[DeadLetter], bool],
    on_examined: Callable[[DeadLetter], None] = lambda letter: None,
) -> tuple[int, int]:
    """Copy matching dead letters to the work queue with a fresh attempt count; (replayed, kept)."""
    channel = connection.channel()
    publisher = ConfirmingPublisher(connection)
    replayed = kept = 0
    try:
        for letter in _walk(channel, settings.dead_letter_queue, None):
            on_examined(letter)
            if not wanted(letter):
                kept += 1
                continue
            headers = {k: v for k, v in letter.headers.items() if not k.startswith("x-pewproc-")}
            headers["x-pewproc-replayed-at"] = datetime.now(UTC).isoformat()
            publisher.publish(settings.work_queue, letter.body, headers)
            channel.basic_ack(letter.delivery_tag)
            replayed += 1
    finally:
        publisher.close()
        channel.close()
    return replayed, kept
