"""Connection parameters for RabbitMQ, TLS included, from settings; failover between nodes.

RABBITMQ_URL may list the nodes of a cluster, comma-separated. Every connection goes to the
first node that answers, in that order, so that a node that went down is passed over at once
(a refused connection fails fast) and the worker reconnects to another.
"""

from __future__ import annotations

import logging
import ssl

import pika
import pika.exceptions

from pewproc.broker.fields import install_faithful_field_codec
from pewproc.settings import Settings, mask_url

log = logging.getLogger(__name__)


def node_urls(settings: Settings) -> list[str]:
    """The AMQP URL of every node, in the order they are tried."""
    return [url.strip() for url in settings.amqp_url.split(",") if url.strip()]


def connection_parameters(settings: Settings, *, heartbeat: int | None = None,
                          url: str | None = None, blocked_timeout: float | None = 300
                          ) -> pika.URLParameters:
    """`blocked_timeout`: how long a connection the broker blocks (resource alarm) may wait
    before pika closes it; None waits for as long as the alarm lasts."""
    url = url or node_urls(settings)[0]
    params = pika.URLParameters(url)
    params.heartbeat = settings.rabbitmq_heartbeat if heartbeat is None else heartbeat
    params.blocked_connection_timeout = blocked_timeout
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.client_properties = {"connection_name": f"pewproc {settings.worker_name}"}
    if params.ssl_options is not None or url.startswith("amqps://"):
        context = ssl.create_default_context(cafile=settings.rabbitmq_ca_file or None)
        if settings.rabbitmq_cert_file:
            context.load_cert_chain(settings.rabbitmq_cert_file, settings.rabbitmq_key_file or None)
        params.ssl_options = pika.SSLOptions(context, params.host)
    return params


def connect(settings: Settings, *, heartbeat: int | None = None,
            blocked_timeout: float | None = 300) -> pika.BlockingConnection:
    """A connection to the first node that answers; the last node's error if none does."""
    install_faithful_field_codec()  # before any header is decoded
    urls = node_urls(settings)
    for number, url in enumerate(urls, 1):
        params = connection_parameters(settings, heartbeat=heartbeat, url=url,
                                       blocked_timeout=blocked_timeout)
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError as exc:
            if number == len(urls):
                raise
            log.warning("broker node %s:%s does not answer (%s); trying the next of %d",
                        params.host, params.port, repr(exc), len(urls))
            continue
        if len(urls) > 1:
            log.info("connected to broker node %s:%s (%d of %d)", params.host, params.port,
                     number, len(urls))
        return connection
    raise AssertionError("RABBITMQ_URL names no node")


def describe(settings: Settings) -> str:
    """The broker's address (every node's) for logs, passwords hidden."""
    return mask_url(settings.amqp_url)
