"""The two kinds of failure pewproc knows, and what each means for the message.

A `PermanentError` means the message can never succeed as it is (bad JSON, a missing file, a file
over the limits): it goes to the dead-letter queue at once. A `TransientError` means the same
message may succeed later (the database restarting, a child killed): it is retried with a delay.
Errors are small and picklable because they cross the process boundary.
"""

from __future__ import annotations


class PewprocError(Exception):
    """Base of pewproc's own errors; `reason` is a short slug used in metrics and headers."""

    reason = "error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.reason))


class PermanentError(PewprocError):
    """The message cannot succeed as it is: dead-letter it, do not retry."""

    reason = "permanent"


class TransientError(PewprocError):
    """The message may succeed later: retry it after a delay."""

    reason = "transient"


class InvalidMessage(PermanentError):
    """The message body is not a valid match message."""

    reason = "invalid_message"


class TelemetryError(PermanentError):
    """The telemetry file is missing, unreadable, malformed or over a limit."""

    reason = "bad_telemetry"


class ConfigurationError(PewprocError):
    """A setting is wrong; raised at start-up, before any message is taken."""

    reason = "configuration"
