"""Publishing retry and dead-letter copies from a thread and a connection of their own.

In a memory or disk alarm RabbitMQ blocks every connection that publishes, and a blocked
connection is read no more: neither its acks nor its heartbeats. So the consumer's connection
never publishes. Copies go out through this thread's connection instead; while the broker blocks
it only this thread waits, and the consumer goes on taking and acking successes, beating its
heartbeats and answering /healthz.

A copy is confirmed by the broker before its request is reported done, and only then does the
consumer ack the original. A copy that cannot be published as it is, for a reason of the message
itself, falls back to a minimal dead letter (the body and a reason), and when even that fails
the consumer rejects the original without requeueing it. Nothing the message carries can make
this connection, let alone the consumer's, reconnect in a loop.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pika
import pika.exceptions

from pewproc.broker.connection import connect
from pewproc.broker.fields import FRAME_SHARE, header_frame_size, negotiated_frame_max
from pewproc.broker.publisher import ConfirmingPublisher
from pewproc.broker.topology import declare_queue
from pewproc.fate import Fate
from pewproc.settings import Settings

log = logging.getLogger(__name__)

CopyOutcome = Literal["published", "minimal", "unpublishable", "dropped"]

TICK_SECONDS = 0.25
RECONNECT_DELAYS = (1, 2, 5, 10, 30)  # seconds; the last repeats
# The broker closed the connection because of a frame it could not take: the message's fault.
_FRAME_ERRORS = frozenset({501, 505})


@dataclass(frozen=True)
class CopyRequest:
    copy: Fate  # where to and with which headers
    fallback: Fate  # the minimal dead letter, if the copy cannot be published as it is
    body: bytes
    properties: pika.BasicProperties
    still_wanted: Callable[[], bool]  # False once the original's channel is gone
    done: Callable[[CopyOutcome], None]  # called on this thread; must hand over, not work


class Unpublishable(Exception):
    """This copy can never be published as it is: too large, unencodable, its channel closed."""


class Refused(Exception):
    """The broker refused the copy (a nack: a full queue with `reject-publish`, say): a state of
    the queue, not of the message, so the copy is tried again later and the original waits."""


class Copier:
    def __init__(self, settings: Settings, on_refused: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self._on_refused = on_refused
        self._requests: queue.SimpleQueue[CopyRequest | None] = queue.SimpleQueue()
        self._connection: pika.BlockingConnection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._waiting_since: float | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pewproc-copier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: CopyRequest) -> None:
        """Queue a copy; safe from any thread, never blocks."""
        self._requests.put(request)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (stale requests are dropped), then close the connection."""
        self._requests.put(None)
        self._stopping.set()
        self._thread.join(timeout)

    @property
    def waiting_seconds(self) -> float:
        """How long the copy being published has waited for the broker: in an alarm, this grows."""
        since = self._waiting_since
        return 0.0 if since is None else time.monotonic() - since

    # The thread

    def _run(self) -> None:
        while True:
            try:
                request = self._requests.get(timeout=TICK_SECONDS)
            except queue.Empty:
                self._service()
                continue
            if request is None:
                break
            self._handle(request)
        self._disconnect()

    def _handle(self, request: CopyRequest) -> None:
        failures = 0
        while request.still_wanted() and not (failures and self._stopping.is_set()):
            try:
                request.done(self._publish_with_fallback(request))
                return
            except pika.exceptions.ConnectionClosedByBroker as exc:
                self._disconnect()
                if exc.reply_code in _FRAME_ERRORS:
                    log.error("the broker refused a copy's frame (%s); dead-lettering it minimally",
                              exc)
                    request.done(self._publish_minimal(request))
                    return
                failures = self._wait_after(exc, failures)
            except Refused as exc:
                self._on_refused()
                failures = self._wait_after(exc, failures)
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._disconnect()
                failures = self._wait_after(exc, failures)
            finally:
                self._waiting_since = None
        request.done("dropped")

    def _publish_with_fallback(self, request: CopyRequest) -> CopyOutcome:
        try:
            self._publish(request.copy, request.body, request.properties)
            return "published"
        except Unpublishable as exc:
            log.error("cannot publish the %s copy to %s (%s); dead-lettering it minimally",
                      request.copy.action, request.copy.queue, exc)
        return self._publish_minimal(request)

    def _publish_minimal(self, request: CopyRequest) -> CopyOutcome:
        try:
            self._publish(request.fallback, request.body,
                          pika.BasicProperties(message_id=request.properties.message_id))
            return "minimal"
        except Unpublishable as exc:
            log.error("cannot publish even a minimal dead letter (%s)", exc)
            return "unpublishable"

    def _publish(self, fate: Fate, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish one copy and wait for the broker's confirmation."""
        assert fate.queue is not None
        publisher = self._connected()
        properties.headers = fate.headers
        try:
            size = header_frame_size(properties)
        except Exception as exc:
            raise Unpublishable(f"its headers cannot be encoded: {exc!r}") from None
        assert self._connection is not None
        frame_max = negotiated_frame_max(self._connection)
        if size > frame_max * FRAME_SHARE:
            raise Unpublishable(f"its header frame would be {size} bytes; frame_max is {frame_max}")
        self._waiting_since = time.monotonic()
        try:
            try:
                publisher.publish(fate.queue, body, fate.headers, properties)
            except pika.exceptions.UnroutableError:
                log.warning("queue %s is missing; declaring it again", fate.queue)
                declare_queue(self._connection, self.settings, fate.queue)
                publisher.publish(fate.queue, body, fate.headers, properties)
        except pika.exceptions.UnroutableError:
            raise Unpublishable(f"queue {fate.queue} is still missing after declaring it") from None
        except pika.exceptions.NackError:
            raise Refused(f"the broker refused the copy to {fate.queue} (nack: is the queue "
                          "full?)") from None
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._publisher = None  # its channel is gone; the connection is fine
            raise Unpublishable(f"the broker closed the channel: {exc}") from None

    # The connection

    def _connected(self) -> ConfirmingPublisher:
        if self._connection is None or not self._connection.is_open:
            # Through a resource alarm this connection waits as long as it lasts: closing it
            # would publish the waiting copy again on a new one, and the broker keeps both.
            self._connection = connect(self.settings, blocked_timeout=None)
            self._publisher = None
        if self._publisher is None:
            self._publisher = ConfirmingPublisher(self._connection)
        return self._publisher

    def _service(self) -> None:
        """Between copies: answer heartbeats and notice a closed connection."""
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except (pika.exceptions.AMQPError, OSError):
            self._disconnect()

    def _wait_after(self, exc: BaseException, failures: int) -> int:
        delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
        log.error("cannot publish copies (%s: %s); trying again in %d s",
                  type(exc).__name__, exc, delay)
        self._stopping.wait(delay)
        return failures + 1

    def _disconnect(self) -> None:
        connection, self._connection, self._publisher = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()
