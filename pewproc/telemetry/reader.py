"""Reading one telemetry file: locate it safely, decompress it within limits, parse it once.

Files on disk come gzipped once, gzipped twice, or plain; the format is told by the magic bytes,
never by the name. The read and the decompression are both capped, so a growing file or a gzip
bomb fails with a clear reason instead of taking the machine's memory. A file that is cut short
but was modified moments ago is most likely still being written: that failure is transient.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from isal import isal_zlib

from pewproc.errors import TelemetryError, TransientError
from pewproc.settings import Settings
from pewproc.telemetry.general import general_events
from pewproc.telemetry.typed import decode_each, decode_typed

GZIP_MAGIC = b"\x1f\x8b"
_MAX_GZIP_LAYERS = 3
# Failures a file that is still being written shows: cut-off gzip, cut-off or empty JSON.
_INCOMPLETE = frozenset({"truncated", "telemetry_not_json"})


@dataclass(frozen=True)
class ReadLimits:
    max_file_bytes: int
    max_json_bytes: int
    max_events: int
    settle_seconds: float = 0.0  # younger files that look cut short are retried, not refused

    @classmethod
    def of(cls, settings: Settings) -> ReadLimits:
        return cls(settings.max_file_bytes, settings.max_json_bytes, settings.max_events,
                   settings.file_settle_seconds)


@dataclass(frozen=True)
class ReadResult:
    events: list[dict[str, Any]]
    file_bytes: int
    json_bytes: int
    read_seconds: float
    decompress_seconds: float
    parse_seconds: float
    decode_path: str  # typed, or general: the file did not fit the typed shapes


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


def read_telemetry(path: Path, limits: ReadLimits, *, typed: bool = True) -> ReadResult:
    """The file's events; `typed` False parses it all the general way (every key of every
    event), as tools that look at more than the collectors read want."""
    t0 = time.perf_counter()
    raw, modified = _read_capped(path, limits.max_file_bytes)
    file_bytes = len(raw)
    t1 = time.perf_counter()
    try:
        data = decompress(raw, limits.max_json_bytes)
        del raw  # the compressed bytes are not needed past this point
        json_bytes = len(data)
        t2 = time.perf_counter()
        events, path_taken = parse_events(data, limits.max_events, typed=typed)
        del data  # nor the JSON, once decoded
    except TelemetryError as exc:
        age = time.time() - modified
        if exc.reason in _INCOMPLETE and age < limits.settle_seconds:
            raise TransientError(
                f"{exc}; the file was modified {age:.0f} s ago, so it is probably still being "
                f"written (FILE_SETTLE_SECONDS={limits.settle_seconds:g})",
                "file_incomplete",
            ) from None
        raise
    t3 = time.perf_counter()
    return ReadResult(events, file_bytes, json_bytes, t1 - t0, t2 - t1, t3 - t2, path_taken)


def _read_capped(path: Path, max_bytes: int) -> tuple[bytes, float]:
    """The file's bytes and modification time; never more than `max_bytes` + 1 are read, so a
    file that grows after it was opened cannot take more memory than the limit allows."""
    try:
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            if stat.st_size > max_bytes:
                raise TelemetryError(f"{path.name} is {stat.st_size} bytes, over "
                                     f"MAX_FILE_BYTES={max_bytes}", "file_too_large")
            raw = file.read(stat.st_size + 1)  # one more: notices a file still growing
            if len(raw) > stat.st_size:
                raw += file.read(max_bytes + 1 - len(raw))
            modified = stat.st_mtime
    except FileNotFoundError:
        raise TelemetryError(f"telemetry file not found: {path}", "file_missing") from None
    except IsADirectoryError:
        raise TelemetryError(f"{path} is a directory", "file_unreadable") from None
    except PermissionError as exc:
        # Like a missing database grant: an operator's fix (ownership, mode) makes it readable.
        raise TransientError(f"cannot read {path}: {exc.strerror}", "file_permission_denied"
                             ) from None
    if len(raw) > max_bytes:
        raise TelemetryError(
            f"{path.name} is over MAX_FILE_BYTES={max_bytes} bytes", "file_too_large"
        )
    return raw, modified


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
    megabytes for nothing. ISA-L inflates the same format as zlib at about twice the speed.
    """
    members: list[bytes] = []
    size = 0
    remaining = data
    while remaining:
        inflater = isal_zlib.decompressobj(wbits=31)
        try:
            member = inflater.decompress(remaining, max_bytes + 1 - size)
        except isal_zlib.error as exc:
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


TYPED, GENERAL = "typed", "general"


def parse_events(data: bytes, max_events: int, *, typed: bool = True
                 ) -> tuple[list[Any], str]:
    """The events, and the path that decoded them: typed (`telemetry.typed`) when the whole file
    fits its shapes; else general, where the events that fit are still decoded typed and the
    others parsed by orjson (`typed.decode_each`). A file that is no JSON array of objects, or
    `typed` False (every key of every event, for tools that look at more than the collectors
    read), is parsed by `orjson.loads` alone, which also names what is wrong."""
    if typed:
        events: Any = decode_typed(data)
        if events is not None:
            return _checked(events, max_events), TYPED
        events = decode_each(data)
        if events is not None:
            return _checked(events, max_events), GENERAL
    try:
        events = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TelemetryError(f"telemetry is not valid JSON: {exc}", "telemetry_not_json") from None
    if not isinstance(events, list):
        raise TelemetryError(
            f"telemetry must be a JSON array of events, got {type(events).__name__}",
            "not_event_list",
        )
    _checked(events, max_events)
    if not all(isinstance(event, dict) for event in events):
        raise TelemetryError("telemetry events must all be JSON objects", "not_event_list")
    return general_events(events), GENERAL


def _checked(events: list[dict[str, Any]], max_events: int) -> list[dict[str, Any]]:
    if len(events) > max_events:
        raise TelemetryError(
            f"telemetry has {len(events)} events, over MAX_EVENTS={max_events}", "too_many_events"
        )
    return events
