"""Connection parameters for RabbitMQ, TLS included, from settings."""

from __future__ import annotations

import ssl

import pika

from pewproc.broker.fields import install_faithful_field_codec
from pewproc.settings import Settings, mask_url


def connection_parameters(settings: Settings, *, heartbeat: int | None = None,
                          blocked_timeout: float | None = 300) -> pika.URLParameters:
    """`blocked_timeout`: how long a connection the broker blocks (resource alarm) may wait
    before pika closes it; None waits for as long as the alarm lasts."""
    params = pika.URLParameters(settings.amqp_url)
    params.heartbeat = settings.rabbitmq_heartbeat if heartbeat is None else heartbeat
    params.blocked_connection_timeout = blocked_timeout
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.client_properties = {"connection_name": f"pewproc {settings.worker_name}"}
    if params.ssl_options is not None or settings.amqp_url.startswith("amqps://"):
        context = ssl.create_default_context(cafile=settings.rabbitmq_ca_file or None)
        if settings.rabbitmq_cert_file:
            context.load_cert_chain(settings.rabbitmq_cert_file, settings.rabbitmq_key_file or None)
        params.ssl_options = pika.SSLOptions(context, params.host)
    return params


def connect(settings: Settings, *, heartbeat: int | None = None,
            blocked_timeout: float | None = 300) -> pika.BlockingConnection:
    install_faithful_field_codec()  # before any header is decoded
    return pika.BlockingConnection(
        connection_parameters(settings, heartbeat=heartbeat, blocked_timeout=blocked_timeout))


def describe(settings: Settings) -> str:
    """The broker's address for logs, password hidden."""
    return mask_url(settings.amqp_url)
