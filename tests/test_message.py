"""Unit tests of the match message contract (pewproc.message) and of pewproc's errors."""

from __future__ import annotations

import pickle

import orjson
import pytest

from pewproc.errors import (
    ConfigurationError,
    InvalidMessage,
    PermanentError,
    PewprocError,
    TelemetryError,
    TransientError,
)
from pewproc.message import MatchMessage, decode_message, peek_match_id

LIMIT = 65536

ALL_FIELDS = {
    "match_id": "c2fb5093-aaaa-bbbb-cccc-000000000001",
    "file_path": "matchID=c2fb5093/raw.json.gz",
    "map_name": "Baltic_Main",
    "game_mode": "squad-fpp",
    "match_datetime": "2025-07-12T17:00:00Z",
    "game_type": "official",
    "file_size_mb": 1.57,
    "downloaded_at": "2025-07-12T17:40:00Z",
    "worker_id": "downloader-3",
    "environment": "production",
    "queue_target": "match.processing.production",
}


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def rejected(raw: bytes, max_bytes: int = LIMIT) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        decode_message(raw, max_bytes)
    return info.value


# Valid messages


def test_a_message_with_only_the_required_fields() -> None:
    msg = decode_message(body(match_id="m1", file_path="a/b.json.gz"), LIMIT)
    assert msg == MatchMessage(match_id="m1", file_path="a/b.json.gz")
    assert msg.map_name is None and msg.file_size_mb is None and msg.game_type is None


def test_a_message_with_every_optional_field() -> None:
    msg = decode_message(body(**ALL_FIELDS), LIMIT)
    for name, value in ALL_FIELDS.items():
        assert getattr(msg, name) == value, name
    assert isinstance(msg.file_size_mb, float)


def test_unknown_fields_are_ignored() -> None:
    msg = decode_message(body(match_id="m1", file_path="f", new_field=[1, 2], other={"x": 1}),
                         LIMIT)
    assert msg == MatchMessage(match_id="m1", file_path="f")


def test_required_fields_are_trimmed() -> None:
    msg = decode_message(body(match_id="  m1\t", file_path="\n a/b.json.gz "), LIMIT)
    assert msg.match_id == "m1"
    assert msg.file_path == "a/b.json.gz"


def test_an_integer_file_size_becomes_a_float_and_a_bad_one_is_dropped() -> None:
    assert decode_message(body(match_id="m", file_path="f", file_size_mb=3), LIMIT).file_size_mb \
        == 3.0
    for bad in ("3.5", True, None, [1]):
        msg = decode_message(body(match_id="m", file_path="f", file_size_mb=bad), LIMIT)
        assert msg.file_size_mb is None, bad


def test_non_string_optional_text_is_kept_as_text() -> None:
    msg = decode_message(body(match_id="m", file_path="f", map_name=7, game_mode=None), LIMIT)
    assert msg.map_name == "7"
    assert msg.game_mode is None


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    raw = body(match_id="m", file_path="f")
    assert decode_message(raw, len(raw)).match_id == "m"


# Invalid messages: every failure is an InvalidMessage with its reason


def test_a_body_over_the_limit_is_message_too_large() -> None:
    raw = body(match_id="m", file_path="f")
    err = rejected(raw, len(raw) - 1)
    assert err.reason == "message_too_large"
    assert "MAX_MESSAGE_BYTES" in str(err)


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b'{"match_id": "m",', b"\xff\xfe{}", b"{'a': 1}"]
)
def test_a_body_that_is_not_json_is_invalid_json(raw: bytes) -> None:
    assert rejected(raw).reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b'["m", "f"]', b'"m"', b"42", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_invalid_message(raw: bytes) -> None:
    err = rejected(raw)
    assert err.reason == "invalid_message"
    assert "JSON object" in str(err)


@pytest.mark.parametrize("field", ["match_id", "file_path"])
@pytest.mark.parametrize("value", ["<missing>", None, "", "   ", 42, ["m"], {"a": 1}, True])
def test_a_missing_empty_or_non_string_required_field_is_invalid_message(
    field: str, value: object
) -> None:
    fields: dict[str, object] = {"match_id": "m", "file_path": "f"}
    if value == "<missing>":
        del fields[field]
    else:
        fields[field] = value
    err = rejected(body(**fields))
    assert err.reason == "invalid_message"
    assert repr(field) in str(err)


def test_every_failure_is_a_permanent_error() -> None:
    err = rejected(b"[]")
    assert isinstance(err, PermanentError)
    assert not isinstance(err, TransientError)


def test_the_error_shows_at_most_80_characters_of_a_bad_value() -> None:
    err = rejected(body(match_id=list(range(1000)), file_path="f"))
    assert "[0, 1, 2" in str(err)
    assert len(str(err)) < 160


# Round trip and peeking


def test_to_json_round_trips_a_full_message() -> None:
    msg = decode_message(body(**ALL_FIELDS), LIMIT)
    assert decode_message(msg.to_json(), LIMIT) == msg


def test_to_json_omits_absent_fields() -> None:
    msg = MatchMessage(match_id="m", file_path="f")
    assert orjson.loads(msg.to_json()) == {"match_id": "m", "file_path": "f"}
    assert decode_message(msg.to_json(), LIMIT) == msg


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"match_id": "m1", "file_path": 5}', "m1"),  # invalid message, id still readable
        (b'{"match_id": "m1"}', "m1"),
        (b'{"match_id": 5}', None),
        (b'{"file_path": "f"}', None),
        (b'["m1"]', None),
        (b"not json", None),
        (b"", None),
        (b"\xff", None),
    ],
)
def test_peek_match_id(raw: bytes, expected: str | None) -> None:
    assert peek_match_id(raw) == expected


# Errors cross the process boundary


@pytest.mark.parametrize(
    "err",
    [
        InvalidMessage("bad body", "invalid_json"),
        InvalidMessage("bad body"),
        TelemetryError("gone", "file_missing"),
        TelemetryError("default reason"),
        TransientError("db down", "database_unavailable"),
        PermanentError("nope"),
        ConfigurationError("bad setting"),
        PewprocError("base", "custom"),
    ],
)
def test_errors_pickle_round_trip_keeping_class_message_and_reason(err: PewprocError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.reason == err.reason
    assert copy.args == err.args


def test_error_reasons_default_to_the_class_reason() -> None:
    assert InvalidMessage("x").reason == "invalid_message"
    assert TelemetryError("x").reason == "bad_telemetry"
    assert TransientError("x").reason == "transient"
    assert PermanentError("x").reason == "permanent"
    assert ConfigurationError("x").reason == "configuration"
    assert InvalidMessage("x", "invalid_json").reason == "invalid_json"
    assert InvalidMessage.reason == "invalid_message"  # an instance reason does not leak


def test_a_decoding_error_pickles_with_its_reason() -> None:
    err = rejected(b"{")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.reason, str(copy)) == (InvalidMessage, "invalid_json", str(err))
