"""Reading a worker's JSON log as it is written, for the commands that drive workers."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson


class JsonLog:
    """A worker's JSON log file (LOG_FORMAT=json), read as it grows; keeps the records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict):
                    self.records.append(record)
