"""The "match telemetry is ready" message: the contract shared with the upstream download stage.

Upstream publishes persistent JSON objects to `match.processing.{ENVIRONMENT}` through the default
exchange. `match_id` and `file_path` are required; the other known fields are optional and unknown
fields are ignored, so upstream can add fields without breaking pewproc.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from pewproc.errors import InvalidMessage

_OPTIONAL_TEXT = (
    "map_name",
    "game_mode",
    "match_datetime",
    "game_type",
    "downloaded_at",
    "worker_id",
    "environment",
    "queue_target",
)


@dataclass(frozen=True, kw_only=True)
class MatchMessage:
    match_id: str
    file_path: str
    map_name: str | None = None
    game_mode: str | None = None
    match_datetime: str | None = None
    game_type: str | None = None
    file_size_mb: float | None = None
    downloaded_at: str | None = None
    worker_id: str | None = None
    environment: str | None = None
    queue_target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as the contract's JSON object has them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def decode_message(body: bytes, max_bytes: int) -> MatchMessage:
    """Parse and validate a message body; every failure is an `InvalidMessage` naming the field."""
    if len(body) > max_bytes:
        raise InvalidMessage(
            f"message body is {len(body)} bytes, over MAX_MESSAGE_BYTES={max_bytes}",
            "message_too_large",
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"message body is not JSON: {exc}", "invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidMessage(
            f"message body must be a JSON object, got {type(data).__name__}", "invalid_message"
        )
    fields: dict[str, Any] = {}
    for name in ("match_id", "file_path"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidMessage(
                f"message field {name!r} must be a non-empty string, got {value!r:.80}",
                "invalid_message",
            )
        fields[name] = value.strip()
    for name in _OPTIONAL_TEXT:
        value = data.get(name)
        if value is not None:
            fields[name] = str(value)
    size = data.get("file_size_mb")
    if isinstance(size, int | float) and not isinstance(size, bool):
        fields["file_size_mb"] = float(size)
    return MatchMessage(**fields)


def peek_match_id(body: bytes) -> str | None:
    """Best-effort match id of a body that may be invalid, for logs and dead-letter headers."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = data.get("match_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
