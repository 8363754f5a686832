"""pewproc: PUBG match telemetry from RabbitMQ to PostgreSQL, parsed in a pool of processes."""

__version__ = "0.1.0"
