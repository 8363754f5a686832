"""Shared fixtures: the real match from ../shared (when present), a throwaway database, a broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(os.environ.get("PEWPROC_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
REAL_MATCH_NAME = "custom-2025-07-12-c2fb5093.json.gz"


@pytest.fixture(scope="session")
def real_match_file() -> Path:
    """The real recent match kept beside the repository; skipped where it is absent (a user's clone)."""
    path = SHARED_DIR / "telemetry" / REAL_MATCH_NAME
    if not path.is_file():
        pytest.skip(f"real telemetry not found at {path} (set PEWPROC_SHARED_DIR to its folder)")
    return path
