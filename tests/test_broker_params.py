"""Connection parameters: TLS and heartbeats come from settings (no broker needed)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pewproc.broker.connection import connection_parameters
from pewproc.settings import Settings


def test_plain_amqp_has_no_tls_and_the_configured_heartbeat() -> None:
    params = connection_parameters(Settings.from_env({}, rabbitmq_heartbeat=7))
    assert params.ssl_options is None
    assert (params.host, params.port, params.heartbeat) == ("localhost", 5672, 7)


def test_amqps_verifies_the_server_against_the_system_store_by_default() -> None:
    params = connection_parameters(Settings.from_env({}, rabbitmq_url="amqps://u:p@broker:5671/"))
    assert params.ssl_options is not None
    context = params.ssl_options.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert params.ssl_options.server_hostname == "broker"


def test_a_ca_file_turns_tls_on_and_is_loaded(tmp_path: Path) -> None:
    # A CA that is not a certificate must fail loudly, proving the file is really read.
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    settings = Settings.from_env({}, rabbitmq_ca_file=str(bogus), rabbitmq_port=5671)
    assert settings.amqp_url.startswith("amqps://")
    with pytest.raises(ssl.SSLError):
        connection_parameters(settings)
