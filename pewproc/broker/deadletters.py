"""Reading and replaying the dead-letter queue, for `pewproc dlq`.

Dead letters are fetched with `basic_get` and left unacknowledged, so closing the channel puts
back every one that was only looked at, in its place. A replayed one is acked only after the
broker confirmed its copy on the work queue. Both walks stop after the messages that were in the
queue when they began, so a replayed match that fails again cannot make replay loop.

Dead-lettering is at least once: a worker killed after the broker confirmed a dead-letter copy
but before it acked the original gets the original redelivered, and its next attempt
dead-letters it again. Every copy pewproc publishes therefore carries the original's
`message_id`, or, when the original had none, one derived from its body (`sha256:` and 32 hex
digits of the body's SHA-256), so that copies of one message are recognised: `list` marks every
copy after the first as a duplicate, and `replay` sends each message back once and removes its
other copies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika

from pewproc import fate
from pewproc.broker.publisher import ConfirmingPublisher
from pewproc.message import peek_match_id
from pewproc.settings import Settings

BODY_ID_PREFIX = "sha256:"


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
    def message_id(self) -> str:
        return message_id_of(self.properties.message_id, self.body)

    @property
    def reason(self) -> str:
        return str(self.headers.get(fate.REASON, "unknown"))

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "match_id": self.match_id,
            "reason": self.reason,
            "error": self.headers.get(fate.ERROR),
            "error_class": self.headers.get(fate.ERROR_CLASS),
            "attempts": self.headers.get(fate.ATTEMPT),
            "failed_at": self.headers.get(fate.FAILED_AT),
            "worker_id": self.headers.get(fate.WORKER),
            "history": list(self.headers.get(fate.HISTORY) or []),
        }


def message_id_of(message_id: str | None, body: bytes) -> str:
    """The id every copy of a message carries: its own, or a stable one derived from its body."""
    return message_id or BODY_ID_PREFIX + hashlib.sha256(body).hexdigest()[:32]


def copy_properties(props: pika.BasicProperties, body: bytes) -> pika.BasicProperties:
    """The original's properties a retry, dead-letter or replayed copy keeps (headers apart)."""
    return pika.BasicProperties(
        content_type=props.content_type, content_encoding=props.content_encoding,
        correlation_id=props.correlation_id, message_id=message_id_of(props.message_id, body),
        timestamp=props.timestamp, type=props.type, app_id=props.app_id,
    )


def duplicates(letters: list[DeadLetter]) -> list[bool]:
    """For each letter, whether an earlier one in the list is a copy of the same message."""
    seen: set[str] = set()
    flags = []
    for letter in letters:
        flags.append(letter.message_id in seen)
        seen.add(letter.message_id)
    return flags


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


@dataclass
class ReplayCount:
    replayed: int = 0  # sent back to the work queue
    duplicates: int = 0  # removed: further copies of a message replayed in this run
    kept: int = 0  # left in the dead-letter queue


def replay_dead_letters(
    connection: pika.BlockingConnection,
    settings: Settings,
    wanted: Callable[[DeadLetter], bool],
    on_examined: Callable[[DeadLetter], None] = lambda letter: None,
    limit: int | None = None,
) -> ReplayCount:
    """Copy matching dead letters to the work queue with a fresh attempt count, oldest first,
    each message once; at most `limit` messages."""
    channel = connection.channel()
    publisher = ConfirmingPublisher(connection)
    count = ReplayCount()
    replayed: set[str] = set()
    try:
        for letter in _walk(channel, settings.dead_letter_queue, None):
            on_examined(letter)
            if letter.message_id in replayed:
                channel.basic_ack(letter.delivery_tag)
                count.duplicates += 1
                continue
            if not wanted(letter) or (limit is not None and count.replayed >= limit):
                count.kept += 1
                continue
            headers = {k: v for k, v in letter.headers.items() if not k.startswith("x-pewproc-")}
            headers["x-pewproc-replayed-at"] = datetime.now(UTC).isoformat()
            publisher.publish(settings.work_queue, letter.body, headers,
                              copy_properties(letter.properties, letter.body))
            channel.basic_ack(letter.delivery_tag)
            replayed.add(letter.message_id)
            count.replayed += 1
    finally:
        publisher.close()
        channel.close()
    return count
