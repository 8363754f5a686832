"""Queue depths for operators: over AMQP always, unacked counts from the management API if set.

AMQP's passive declare reports ready messages and consumers, never unacknowledged ones; those
only the management API (or rabbitmqctl) knows.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any
from urllib.parse import quote

import pika
from pika.exceptions import ChannelClosedByBroker

from pewproc.broker.topology import NOT_FOUND, all_queues
from pewproc.settings import Settings


def queue_stats(connection: pika.BlockingConnection, settings: Settings) -> list[dict[str, Any]]:
    rows = []
    for queue in all_queues(settings):
        channel = connection.channel()
        try:
            ok = channel.queue_declare(queue, passive=True).method
        except ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            rows.append({"queue": queue, "ready": None, "unacked": None, "consumers": None})
            continue
        rows.append({"queue": queue, "ready": ok.message_count, "unacked": None,
                     "consumers": ok.consumer_count})
        channel.close()
    if settings.rabbitmq_management_url:
        for row in rows:
            if row["ready"] is None:
                continue
            row["unacked"] = _management_unacked(settings, row["queue"])
    return rows


def _management_unacked(settings: Settings, queue: str) -> int | None:
    url = (f"{settings.rabbitmq_management_url.rstrip('/')}/api/queues/"
           f"{quote(settings.rabbitmq_vhost, safe='')}/{quote(queue, safe='')}")
    token = base64.b64encode(
        f"{settings.rabbitmq_user}:{settings.rabbitmq_password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(json.load(response).get("messages_unacknowledged", 0))
    except (OSError, ValueError):
        return None
