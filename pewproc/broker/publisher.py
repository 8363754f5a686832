"""Publishing with publisher confirms: a copy counts as safe only once the broker confirmed it."""

from __future__ import annotations

from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

PERSISTENT = pika.DeliveryMode.Persistent.value


class ConfirmingPublisher:
    """Publishes persistent messages to a queue through the default exchange, with confirms.

    `publish` returns only after the broker confirmed the message; an unroutable message (the
    queue is missing) raises `pika.exceptions.UnroutableError` instead of vanishing.
    """

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.channel: BlockingChannel = connection.channel()
        self.channel.confirm_delivery()

    def publish(self, queue: str, body: bytes, headers: dict[str, Any] | None = None,
                properties: pika.BasicProperties | None = None) -> None:
        props = properties or pika.BasicProperties()
        props.delivery_mode = PERSISTENT
        props.content_type = props.content_type or "application/json"
        if headers is not None:
            props.headers = headers
        self.channel.basic_publish("", queue, body, props, mandatory=True)

    def close(self) -> None:
        if self.channel.is_open:
            self.channel.close()
