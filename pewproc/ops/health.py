"""One small HTTP server for /metrics, /healthz (the consumer loop is alive) and /readyz.

Readiness means the worker can do its job right now: connected to the broker, and the database
answering a trivial query. While start-up waits for either, /readyz says what it waits for.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pewproc.settings import SettingError

log = logging.getLogger(__name__)


class HealthState:
    """Written by the consumer thread, read by the HTTP server's threads."""

    def __init__(self, conninfo: str, stall_after: float, broker: str = "the broker") -> None:
        self.conninfo = conninfo
        self.stall_after = stall_after
        self.broker = broker
        self.last_loop = time.monotonic()
        self.broker_connected = False
        self.publish_wait = 0.0  # seconds the copy being published has waited for the broker
        self.waiting_for = ""  # set by the start-up wait: what it is waiting for, and why

    def beat(self) -> None:
        self.last_loop = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.last_loop
        if idle > self.stall_after:
            return False, f"consumer loop stalled for {idle:.0f} s"
        return True, "consumer loop alive"

    def ready(self) -> tuple[bool, str]:
        if self.waiting_for:
            return False, self.waiting_for
        if not self.broker_connected:
            return False, f"not connected to {self.broker}"
        if self.publish_wait >= 5.0:
            return False, (f"the broker is blocking publishes: a copy has waited "
                           f"{self.publish_wait:.0f} s for confirmation (memory or disk alarm?)")
        try:
            with psycopg.connect(self.conninfo, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return False, f"database unavailable: {type(exc).__name__}"
        return True, "broker and database reachable"


def serve(addr: str, port: int, registry: CollectorRegistry, state: HealthState
          ) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; returns it so the caller can shut it down."""
    routes: dict[str, Callable[[], tuple[bool, str]]] = {
        "/healthz": state.alive,
        "/readyz": state.ready,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in routes:
                ok, text = routes[path]()
                self._send(200 if ok else 503, (text + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    try:
        server = ThreadingHTTPServer((addr, port), Handler)
    except OSError as exc:
        problem = ("is already in use" if exc.errno == errno.EADDRINUSE
                   else f"cannot be bound ({exc.strerror})")
        raise SettingError("metrics_port", f"{addr}:{port} {problem}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="pewproc-http", daemon=True).start()
    return server
