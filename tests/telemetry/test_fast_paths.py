"""The hot paths' shortcuts agree with the general code they skip, value for value."""

from __future__ import annotations

from datetime import datetime

import pytest

from pewproc.telemetry.collectors.common import DECODERS, Tracked, body, hit, sample
from pewproc.telemetry.collectors.fights import posix_seconds
from pewproc.telemetry.extract import extract
from pewproc.telemetry.model import MatchContext, phase, text
from tests.telemetry.events import Decoding, char, damage, decode, position

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding


@pytest.mark.parametrize(
    "stamp",
    [
        "2025-07-12T17:00:01.123Z",
        "2025-07-12T17:00:01.1234567Z",
        "2025-07-12T17:00:01.12345+00:00",
        "2025-07-12T19:00:01.999999+02:00",
        "1999-12-31T23:59:59.000001Z",
        "2025-07-12T17:00:01.123",  # naive: timestamp() reads it as local time
    ],
)
def test_posix_seconds_is_timestamp_to_the_bit(stamp: str) -> None:
    at = datetime.fromisoformat(stamp)
    assert posix_seconds(at) == at.timestamp()


@pytest.mark.parametrize(
    "location",
    [
        {"x": 12345.5, "y": 100, "z": -3.25},
        {"x": 12345.5, "y": None, "z": 1.0},
        {"x": 1.0, "y": 2.0},
        {},
        None,
    ],
)
def test_body_of_complete_and_partial_locations(location: dict | None) -> None:
    characters = [{"accountId": "account.a", "teamId": 3, "location": location},
                  {"accountId": "", "teamId": 0, "location": location}, None]
    expected = tuple(
        (location or {}).get(k) / 100.0 if (location or {}).get(k) is not None else None
        for k in "xyz"
    )
    events, _ = decode([{"_T": "LogPlayerPosition", "character": c} for c in characters],
                       Decoding.asked)
    real, placeholder, absent = (e.character for e in events)
    assert body(real) == ("account.a", 3, *expected)
    assert body(placeholder) is None
    assert body(absent) is None


@pytest.mark.parametrize("value", ["ArmShot", "", "None", None, 0, 1.5, True])
def test_text_of_every_shape(value: object) -> None:
    general = None if value is None or value == "" or value == "None" else str(value)
    assert text(value) == general


@pytest.mark.parametrize("value", [0, 1, 2.5, 0.10000000149011612, True, None, "1"])
def test_phase_of_every_shape(value: object) -> None:
    general = float(value) if isinstance(value, int | float) else None  # type: ignore[arg-type]
    (event,), _ = decode([{"_T": "LogA", "common": {"isGame": value}}], Decoding.asked)
    got = phase(event)
    assert got == general and type(got) is type(general)


def test_game_events_counted_whatever_the_shape_of_common() -> None:
    events = [
        {"_T": "LogA", "common": {"isGame": 1}},
        {"_T": "LogA", "common": {"isGame": 0.1}},
        {"_T": "LogA", "common": {"isGame": 0}},
        {"_T": "LogA", "common": {"isGame": None}},
        {"_T": "LogA", "common": {}},
        {"_T": "LogA", "common": None},
        {"_T": "LogA"},
        {"no": "type", "common": {"isGame": 2}},
    ]
    decoded, _ = decode(events, Decoding.asked)
    assert extract(decoded, MatchContext("m")).summary["game_event_count"] == 3


def test_decoded_events_carry_what_the_collectors_read() -> None:
    a, b = char("account.a", 1), char("account.b", 2)
    (h, p), _ = decode([damage(5, a, b, 10), position(6, a, 6)], Decoding.asked)
    assert hit(h) == (h, phase(h), h.attacker, h.victim, body(h.attacker), body(h.victim))
    assert sample(p) == (p, phase(p), p.character, body(p.character))
    assert dict(DECODERS) == {"LogPlayerTakeDamage": hit, "LogPlayerPosition": sample}


def test_tracked_answers_as_the_context_does() -> None:
    for tracked in (None, frozenset({"account.a"}), frozenset()):
        ctx = MatchContext("m", tracked)
        memo = Tracked(ctx)
        for account_id in ("account.a", "account.b", "ai.1", "", None, "account.a"):
            assert memo[account_id] == ctx.is_tracked(account_id)
