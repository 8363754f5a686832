"""Logging set-up: plain text for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from pewproc.settings import Settings
from pewproc.text import printable

# Attributes every LogRecord has; anything else was passed through `extra=` and is structured data.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """One line per record: control characters in the message are escaped, so a value from a
    message (a NUL, a newline in a match id) can neither break nor forge a line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Per-checkout INFO lines from the pool drown what matters. pika logs each failed connection
    # as several ERROR lines and a traceback, and every failure reaches pewproc as an exception
    # that it logs in one line (with host, port and the next try): pika speaks at DEBUG only.
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    pika_level = logging.DEBUG if settings.log_level == "DEBUG" else logging.CRITICAL
    logging.getLogger("pika").setLevel(pika_level)
