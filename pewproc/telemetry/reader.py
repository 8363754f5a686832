"""Reading one telemetry file: locate it safely, decompress it within limits, parse it once.

Files on disk come gzipped once, gzipped twice, or plain; the format is told by the magic bytes,
never by the name. Decompression is capped, so a gzip bomb fails with a clear reason instead of
taking the machine's memory.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pewproc.errors import TelemetryError

GZIP_MAGIC = b"\x1f\x8b"
_MAX_GZIP_LAYERS = 3


@dataclass(frozen=True)
class ReadLimits:
    max_file_bytes: int
    max_json_bytes: int
    max_events: int


@dataclass(frozen=True)
class ReadResult:
    events: list[dict[str, Any]]
    file_bytes: int
    json_bytes: int
    read_seconds: float
    decompress_seconds: float
    parse_seconds: float


def resolve_inside(file_path: str, root: str | Path) -> Path:
    """The real path of `file_path` (relative paths start at `root`), refused outside `root`."""
    root_real = Path(root).resolve()
    candidate = Path(file_path)
    if not candidate.is_absolute():
        candidate = root_real / candidate
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise TelemetryError(f"telemetry file not found: {file_path}", "file_missing") from None
    except (OSError, RuntimeError) as exc:
        raise TelemetryError(f"cannot resolve {file_path}: {exc}", "file_unreadable") from None
    if not real.is_relative_to(root_real):
        raise TelemetryError(
            f"{file_path} resolves outside TELEMETRY_ROOT ({root_real}); refused",
            "outside_root",
        )
    if not real.is_file():
        raise TelemetryError(f"{file_path} is not a regular file", "file_unreadable")
    return real


def read_telemetry(path: Path, limits: ReadLimits) -> ReadResult:
    t0 = time.perf_counter()
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise TelemetryError(
                f"{path.name} is {size} bytes, over MAX_FILE_BYTES={limits.max_file_bytes}",
                "file_too_large",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TelemetryError(f"telemetry file not found: {path}", "file_missing") from None
    except IsADirectoryError:
        raise TelemetryError(f"{path} is a directory", "file_unreadable") from None
    except PermissionError as exc:
        raise TelemetryError(f"cannot read {path}: {exc}", "file_unreadable") from None
    t1 = time.perf_counter()
    data = decompress(raw, limits.max_json_bytes)
    t2 = time.perf_counter()
    events = parse_events(data, limits.max_events)
    t3 = time.perf_counter()
    return ReadResult(events, len(raw), len(data), t1 - t0, t2 - t1, t3 - t2)


def decompress(raw: bytes, max_bytes: int) -> bytes:
    """Undo up to three layers of gzip; plain JSON passes through. Output capped at `max_bytes`."""
    data = raw
    for _ in range(_MAX_GZIP_LAYERS):
        if not data.startswith(GZIP_MAGIC):
            break
        data = _gunzip_capped(data, max_bytes)
    if len(data) > max_bytes:
        raise TelemetryError(
            f"telemetry JSON is {len(data)} bytes, over MAX_JSON_BYTES={max_bytes}",
            "json_too_large",
        )
    return data


def _gunzip_capped(data: bytes, max_bytes: int) -> bytes:
    """Decompress every gzip member of `data`, never holding more than `max_bytes` + 1 of output.

    A file is almost always one member, whose output is returned as it came: no copy of tens of
    megabytes for nothing.
    """
    members: list[bytes] = []
    size = 0
    remaining = data
    while remaining:
        inflater = zlib.decompressobj(wbits=31)
        try:
            member = inflater.decompress(remaining, max_bytes + 1 - size)
        except zlib.error as exc:
            raise TelemetryError(f"corrupt gzip data: {exc}", "corrupt_gzip") from None
        members.append(member)
        size += len(member)
        if size > max_bytes:
            raise TelemetryError(
                f"telemetry decompresses to more than MAX_JSON_BYTES={max_bytes}",
                "json_too_large",
            )
        if not inflater.eof:
            raise TelemetryError("gzip data is truncated", "truncated")
        remaining = inflater.unused_data
        if remaining and not remaining.startswith(GZIP_MAGIC):
            break  # trailing padding after the last member
    return members[0] if len(members) == 1 else b"".join(members)


def parse_events(data: bytes, max_events: int) -> list[dict[str, Any]]:
    try:
        events = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TelemetryError(f"telemetry is not valid JSON: {exc}", "telemetry_not_json") from None
    if not isinstance(events, list):
        raise TelemetryError(
            f"telemetry must be a JSON array of events, got {type(events).__name__}",
            "not_event_list",
        )
    if len(events) > max_events:
        raise TelemetryError(
            f"telemetry has {len(events)} events, over MAX_EVENTS={max_events}", "too_many_events"
        )
    if not all(isinstance(event, dict) for event in events):
        raise TelemetryError("telemetry events must all be JSON objects", "not_event_list")
    return events
