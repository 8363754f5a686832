"""The queues pewproc uses, declared so that the upstream publisher's own declaration still works.

The work queue belongs to upstream, which re-declares it durable and with no arguments before
every publish. Adding dead-letter or TTL arguments to it would make that declaration fail, so
pewproc leaves it alone (and accepts it as it is, quorum included) and keeps everything of its
own in separate queues: one wait queue per retry delay, whose TTL sends messages back to the work
queue through the default exchange, and a plain durable dead-letter queue that pewproc publishes
to itself.

On a cluster the work queue is a quorum queue, and pewproc's queues follow its type, so that
none of them lives on one node only. A quorum wait queue dead-letters at most once by default:
a message whose TTL expires while the work queue has no leader (a node just died) would be
dropped. So they are declared with `x-dead-letter-strategy: at-least-once`, which RabbitMQ
3.10 allows only with `x-overflow: reject-publish`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from pewproc.settings import Settings

NOT_FOUND = 404
PRECONDITION_FAILED = 406
_CURRENT_TYPE = re.compile(r"inequivalent arg 'x-queue-type'.*current is '(\w+)'")


def declare_topology(connection: pika.BlockingConnection, settings: Settings) -> BlockingChannel:
    """Make sure every queue exists; returns an open channel (a passive miss closes one).

    Each queue is looked up passively first, so a queue an operator created differently (a
    quorum queue on a cluster, say) is used as it is instead of failing the declaration.
    """
    channel = _ensure(connection, connection.channel(), settings.work_queue, None)
    kind = work_queue_type(connection, settings)
    for queue, arguments in queue_arguments(settings, kind).items():
        channel = _ensure(connection, channel, queue, arguments)
    return channel


def declare_queue(connection: pika.BlockingConnection, settings: Settings, queue: str) -> None:
    """Declare one of pewproc's queues again (someone deleted it), as `declare_topology` would."""
    arguments = queue_arguments(settings, work_queue_type(connection, settings))[queue]
    channel = _ensure(connection, connection.channel(), queue, arguments)
    channel.close()


def work_queue_type(connection: pika.BlockingConnection, settings: Settings) -> str:
    """The existing work queue's type: classic, quorum or stream.

    AMQP has no way to read a queue's arguments, but a declaration naming a type tells: the
    broker accepts `x-queue-type: classic` for a classic queue, and for any other type refuses
    it naming the current one (the type is checked before any other argument). The probe runs
    on a channel of its own, which a refusal closes."""
    channel = connection.channel()
    try:
        channel.queue_declare(settings.work_queue, durable=True,
                              arguments={"x-queue-type": "classic"})
    except ChannelClosedByBroker as exc:
        found = _CURRENT_TYPE.search(exc.reply_text)
        if exc.reply_code != PRECONDITION_FAILED:
            raise
        return found.group(1) if found else "classic"  # another argument differs: classic
    channel.close()
    return "classic"


def queue_arguments(settings: Settings, work_type: str = "classic"
                    ) -> dict[str, dict[str, object] | None]:
    """Every queue pewproc uses, with the arguments it declares it with if it is missing; its
    own queues are quorum queues when the work queue is one."""
    quorum = work_type == "quorum"
    own: dict[str, object] = {"x-queue-type": "quorum"} if quorum else {}
    queues: dict[str, dict[str, object] | None] = {
        settings.work_queue: None, settings.dead_letter_queue: own or None}
    for delay in sorted(set(settings.retry_delay_list)):
        queues[settings.retry_queue(delay)] = {
            **own,
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": settings.work_queue,
            **({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
               if quorum else {}),
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
