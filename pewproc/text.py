"""Making values from messages and telemetry safe to put in a log line or a message header.

A match id or an error text comes from outside: it may hold control characters (a NUL, a newline
that forges a log line) or be huge. Everything pewproc writes to logs and headers goes through
here.
"""

from __future__ import annotations

import hashlib
import re

# C0 and C1 controls, and the Unicode line separators and bidirectional overrides that split a
# line or reorder what a reader sees.
_UNICODE = "\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_UNICODE}]")
_CONTROL_AND_NEWLINES = re.compile(f"[\x00-\x1f\x7f-\x9f{_UNICODE}]")


def printable(text: object, limit: int | None = None, *, newlines: bool = False) -> str:
    """`text` with control characters escaped (NUL becomes \\x00), cut to `limit` characters.

    With `newlines`, line feeds and tabs are kept (a traceback); otherwise they are escaped too.
    """
    value = str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    pattern = _CONTROL if newlines else _CONTROL_AND_NEWLINES
    return pattern.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def short_id(match_id: str | None, limit: int = 128) -> str:
    """A match id fit for a header or a log line: long ids keep their start and a hash of the
    whole, so two long ids never look alike."""
    if match_id is None:
        return ""
    if len(match_id) > limit:
        digest = hashlib.sha256(match_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        match_id = f"{match_id[:limit - 18]}…#{digest}"
    return printable(match_id)
