"""Extraction tests run once per decoding path (typed, and the general fallback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.telemetry.events import DECODE_PATHS, Decoding


@pytest.fixture(params=DECODE_PATHS)
def decode_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Modules that extract use it (`pytestmark`): each test then runs on both paths."""
    Decoding.asked, Decoding.taken = request.param, None
    yield request.param
    Decoding.asked, Decoding.taken = "general", None
