"""The queues pewproc uses, declared so that the upstream publisher's own declaration still works.

The work queue belongs to upstream, which re-declares it durable and with no arguments before
every publish. Adding dead-letter or TTL arguments to it would make that declaration fail, so
pewproc leaves it alone (and accepts it as it is, quorum included) and keeps everything of its
own in separate queues: one wait queue per retry delay, whose TTL sends messages back to the work
queue through the default exchange, and a plain durable dead-letter queue that pewproc publishes
to itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from pewproc.settings import Settings

NOT_FOUND = 404


def declare_topology(connection: pika.BlockingConnection, settings: Settings) -> BlockingChannel:
    """Make sure every queue exists; returns an open channel (a passive miss closes one).

    Each queue is looked up passively first, so a queue an operator created differently (a
    quorum queue on a cluster, say) is used as it is instead of failing the declaration.
    """
    channel = connection.channel()
    for queue, arguments in queue_arguments(settings).items():
        channel = _ensure(connection, channel, queue, arguments)
    return channel


def declare_queue(connection: pika.BlockingConnection, settings: Settings, queue: str) -> None:
    """Declare one of pewproc's queues again (someone deleted it), as `declare_topology` would."""
    channel = _ensure(connection, connection.channel(), queue, queue_arguments(settings)[queue])
    channel.close()


def queue_arguments(settings: Settings) -> dict[str, dict[str, object] | None]:
    """Every queue pewproc uses, with the arguments it declares it with if it is missing."""
    queues: dict[str, dict[str, object] | None] = {
        settings.work_queue: None, settings.dead_letter_queue: None}
    for delay in sorted(set(settings.retry_delay_list)):
        queues[settings.retry_queue(delay)] = {
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": settings.work_queue,
        }
    return queues


def _ensure(connection: pika.BlockingConnection, channel: BlockingChannel, queue: str,
            arguments: dict[str, object] | None) -> BlockingChannel:
    try:
        with _quiet_channel_close():
            channel.queue_declare(queue, passive=True)
        return channel
    except ChannelClosedByBroker as exc:
        if exc.reply_code != NOT_FOUND:
            raise
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments=arguments)
    return channel


@contextmanager
def _quiet_channel_close() -> Iterator[None]:
    """pika logs a WARNING when the broker closes a channel; for a passive declare of a queue
    that does not exist yet (every first start) that close is the expected answer."""
    channel_log = logging.getLogger("pika.channel")
    level = channel_log.level
    channel_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        channel_log.setLevel(level)


def all_queues(settings: Settings) -> list[str]:
    return [
        settings.work_queue,
        *(settings.retry_queue(d) for d in sorted(set(settings.retry_delay_list))),
        settings.dead_letter_queue,
    ]


def delete_topology(connection: pika.BlockingConnection, settings: Settings) -> None:
    """Delete every queue of the environment, messages included: bench and soak clean up."""
    channel = connection.channel()
    for queue in all_queues(settings):
        channel.queue_delete(queue)
    channel.close()
