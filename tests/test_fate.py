"""Unit tests of the retry and dead-letter policy (pewproc.fate): pure functions, no broker."""

from __future__ import annotations

import math
import struct
from datetime import datetime

import orjson
import pika
import pika.data
import pytest

from pewproc.broker.fields import (
    FRAME_SHARE,
    RawField,
    header_frame_size,
    install_faithful_field_codec,
)
from pewproc.fate import (
    ATTEMPT,
    DROPPED,
    ERROR,
    ERROR_CLASS,
    FAILED_AT,
    HISTORY,
    MATCH_ID,
    MINIMAL,
    REASON,
    WORKER,
    Fate,
    attempt_of,
    decide,
    lost_child_result,
    minimal_dead_letter,
)
from pewproc.processing import TaskResult
from pewproc.settings import Settings
from tests.support import nested_tables

SETTINGS = Settings.from_env({}, environment="test", worker_id="worker-7", retry_delays="5,30,120",
                             max_retries=5)
WORK = "match.processing.test"
DLQ = "match.processing.test.dlq"


def permanent(reason: str = "invalid_json", error: str = "not JSON") -> TaskResult:
    return TaskResult(outcome="failed", match_id="m1", retryable=False, reason=reason,
                      error=error, error_class="pewproc.errors.InvalidMessage")


def transient(reason: str = "database_unavailable", error: str = "db down") -> TaskResult:
    return TaskResult(outcome="failed", match_id="m1", retryable=True, reason=reason,
                      error=error, error_class="psycopg.OperationalError")


# Success


@pytest.mark.parametrize("outcome", ["completed", "skipped"])
def test_success_and_skip_are_acked(outcome: str) -> None:
    fate = decide(TaskResult(outcome=outcome, match_id="m1"), 3, {ATTEMPT: 3}, SETTINGS)
    assert fate == Fate("ack")
    assert fate.queue is None and fate.headers == {} and fate.delay is None


# Permanent failures


def test_a_permanent_failure_is_dead_lettered_with_every_header() -> None:
    before = datetime.now().astimezone()
    fate = decide(permanent(), 1, None, SETTINGS)
    after = datetime.now().astimezone()
    assert fate.action == "dead_letter"
    assert fate.queue == DLQ
    assert fate.delay is None
    h = fate.headers
    assert h[REASON] == "invalid_json"
    assert h[ERROR] == "not JSON"
    assert h[ERROR_CLASS] == "pewproc.errors.InvalidMessage"
    assert h[WORKER] == "worker-7"
    assert h[ATTEMPT] == 1
    assert h[MATCH_ID] == "m1"
    assert before <= datetime.fromisoformat(h[FAILED_AT]) <= after
    assert len(h[HISTORY]) == 1
    assert "attempt 1 invalid_json: not JSON" in h[HISTORY][0]


def test_a_permanent_failure_is_dead_lettered_even_with_retries_left() -> None:
    fate = decide(permanent(), 2, {ATTEMPT: 2}, SETTINGS)
    assert fate.action == "dead_letter"
    assert fate.headers[REASON] == "invalid_json"  # no retries_exhausted prefix
    assert fate.headers[ATTEMPT] == 2


def test_dead_letter_carries_foreign_headers_and_replaces_pewproc_ones() -> None:
    headers = {"x-upstream-trace": "abc", "content-origin": 5, REASON: "stale", ERROR: "old",
               "x-pewproc-unknown": "dropped"}
    fate = decide(permanent(), 1, headers, SETTINGS)
    assert fate.headers["x-upstream-trace"] == "abc"
    assert fate.headers["content-origin"] == 5
    assert fate.headers[REASON] == "invalid_json"
    assert fate.headers[ERROR] == "not JSON"
    assert "x-pewproc-unknown" not in fate.headers
    assert headers[REASON] == "stale"  # the delivery's own headers are not modified


def test_dead_letter_headers_survive_missing_result_fields() -> None:
    result = TaskResult(outcome="failed", retryable=False)
    h = decide(result, 1, None, SETTINGS).headers
    assert h[REASON] == "unknown"
    assert h[ERROR] == "" and h[ERROR_CLASS] == "" and h[MATCH_ID] == ""


def test_a_long_error_is_cut_in_headers_and_history() -> None:
    fate = decide(permanent(error="e" * 5000), 1, None, SETTINGS)
    assert fate.headers[ERROR] == "e" * 500 + "…"
    assert "e" * 201 not in fate.headers[HISTORY][-1]
    assert fate.headers[HISTORY][-1].endswith("e" * 200)


def test_the_worker_header_defaults_to_the_host_worker_name() -> None:
    settings = SETTINGS.replace(worker_id="")
    assert decide(permanent(), 1, None, settings).headers[WORKER] == settings.worker_name


# Transient failures


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 5), (2, 30), (3, 120), (4, 120), (5, 120)],  # the last delay repeats
)
def test_a_transient_failure_waits_in_the_queue_of_its_attempts_delay(
    attempt: int, delay: int
) -> None:
    fate = decide(transient(), attempt, {ATTEMPT: attempt}, SETTINGS)
    assert fate.action == "retry"
    assert fate.delay == delay
    assert fate.queue == f"{WORK}.retry.{delay}s"
    assert fate.queue == SETTINGS.retry_queue(delay)
    assert fate.headers[ATTEMPT] == attempt + 1


def test_a_retry_appends_to_the_history_and_carries_foreign_headers() -> None:
    headers = {ATTEMPT: 2, HISTORY: ["first failure"], "x-trace": "t1", REASON: "stale"}
    fate = decide(transient(error="conn refused"), 2, headers, SETTINGS)
    assert fate.headers[HISTORY][0] == "first failure"
    assert len(fate.headers[HISTORY]) == 2
    assert "attempt 2 database_unavailable: conn refused" in fate.headers[HISTORY][1]
    assert fate.headers["x-trace"] == "t1"
    assert REASON not in fate.headers  # only the attempt and the history ride along a retry
    assert headers[HISTORY] == ["first failure"]


def test_the_history_is_bounded_to_the_newest_entries() -> None:
    old = [f"entry {i}" for i in range(30)]
    for result, action in ((transient(), "retry"), (permanent(), "dead_letter")):
        fate = decide(result, 1, {HISTORY: old}, SETTINGS)
        assert fate.action == action
        history = fate.headers[HISTORY]
        assert len(history) == 20
        assert history[0] == "entry 11"
        assert "attempt 1" in history[-1]


def test_a_message_is_retried_max_retries_times_then_dead_lettered() -> None:
    headers: dict = {"x-trace": "t1"}
    actions = []
    for _ in range(10):
        attempt = attempt_of(headers)
        fate = decide(transient(), attempt, headers, SETTINGS)
        actions.append(fate.action)
        if fate.action != "retry":
            break
        headers = fate.headers
    assert actions == ["retry"] * 5 + ["dead_letter"]
    h = fate.headers
    assert fate.queue == DLQ
    assert h[REASON] == "retries_exhausted:database_unavailable"
    assert h[ATTEMPT] == 6
    assert h["x-trace"] == "t1"
    assert len(h[HISTORY]) == 6
    assert [f"attempt {i} " in entry for i, entry in enumerate(h[HISTORY], 1)] == [True] * 6


def test_max_retries_zero_dead_letters_a_transient_failure_at_once() -> None:
    fate = decide(transient(), 1, None, SETTINGS.replace(max_retries=0))
    assert fate.action == "dead_letter"
    assert fate.queue == DLQ
    assert fate.headers[REASON] == "retries_exhausted:database_unavailable"
    assert fate.headers[ATTEMPT] == 1


def test_exhausted_retries_without_a_reason_say_unknown() -> None:
    result = TaskResult(outcome="failed", retryable=True)
    fate = decide(result, 6, None, SETTINGS)
    assert fate.headers[REASON] == "retries_exhausted:unknown"


# attempt_of


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, 1),
        ({}, 1),
        ({"other": 3}, 1),
        ({ATTEMPT: 4}, 4),
        ({ATTEMPT: 1}, 1),
        ({ATTEMPT: 0}, 1),
        ({ATTEMPT: -3}, 1),
        ({ATTEMPT: "3"}, 1),
        ({ATTEMPT: b"3"}, 1),
        ({ATTEMPT: 2.0}, 1),
        ({ATTEMPT: None}, 1),
        ({ATTEMPT: [2]}, 1),
        ({ATTEMPT: True}, 1),  # bool is an int to Python, never to us
        ({ATTEMPT: 1e30}, 1),  # a double from another client
        ({ATTEMPT: 10**30}, 1),  # what pika made of that double before
        ({ATTEMPT: 2**63 - 1}, 1),
        ({ATTEMPT: 10_000}, 10_000),
        ({ATTEMPT: 10_001}, 1),
    ],
)
def test_attempt_of(headers: dict | None, expected: int) -> None:
    assert attempt_of(headers) == expected


def test_a_garbage_history_header_is_treated_as_no_history() -> None:
    fate = decide(transient(), 1, {HISTORY: 7}, SETTINGS)
    assert fate.action == "retry"
    assert len(fate.headers[HISTORY]) == 1


# Lost children


def test_lost_child_result_is_a_retryable_failure() -> None:
    from concurrent.futures.process import BrokenProcessPool

    result = lost_child_result(BrokenProcessPool("child died"), "child_lost")
    assert result.outcome == "failed"
    assert not result.ok
    assert result.retryable is True
    assert result.reason == "child_lost"
    assert result.error == "child died"
    assert result.error_class == "concurrent.futures.process.BrokenProcessPool"
    assert decide(result, 1, None, SETTINGS).action == "retry"


def test_lost_child_result_of_a_silent_exception_names_its_class() -> None:
    result = lost_child_result(TimeoutError(), "timeout")
    assert result.error == "TimeoutError"
    assert result.error_class == "builtins.TimeoutError"
    assert result.reason == "timeout"
    fate = decide(result, 6, None, SETTINGS)
    assert fate.headers[REASON] == "retries_exhausted:timeout"
    assert fate.headers[ERROR_CLASS] == "builtins.TimeoutError"


# Copies that always fit and always encode


def encoded_headers(headers: dict) -> int:
    """Bytes of the content-header frame a copy with these headers makes; raises if pika cannot
    encode them."""
    return header_frame_size(pika.BasicProperties(headers=headers))


def test_a_huge_match_id_is_shortened_with_a_hash_in_the_dead_letter() -> None:
    long_ids = ["x" * 150_000, "x" * 149_999 + "y"]
    ids = [decide(TaskResult(outcome="failed", match_id=m, reason="message_too_large"), 1, None,
                  SETTINGS).headers[MATCH_ID] for m in long_ids]
    assert all(len(i) <= 128 for i in ids)
    assert ids[0] != ids[1]  # the hash tells them apart
    assert decide(permanent(), 1, None, SETTINGS).headers[MATCH_ID] == "m1"  # short ids as they are


def test_carried_headers_are_capped_largest_first_and_named() -> None:
    headers = {"x-big": "b" * 131_000, "x-medium": "m" * 10_000, "x-small": "s", ATTEMPT: 1}
    fate = decide(permanent(), 1, headers, SETTINGS)
    assert "x-big" not in fate.headers
    assert fate.headers["x-medium"] == "m" * 10_000 and fate.headers["x-small"] == "s"
    assert fate.headers[DROPPED] == ["x-big"]
    assert encoded_headers(fate.headers) < 64 * 1024


def test_values_pika_cannot_send_back_as_they_came_are_dropped_not_changed() -> None:
    headers = {"x-double": 1.57, "x-nested": {"a": [1, 2.5]}, "x-huge": 2**70,
               "x-fine": {"a": [1, "two", None, True]}}
    for result in (permanent(), transient()):
        fate = decide(result, 1, headers, SETTINGS)
        assert sorted(fate.headers[DROPPED]) == ["x-double", "x-huge", "x-nested"]
        assert fate.headers["x-fine"] == {"a": [1, "two", None, True]}
        encoded_headers(fate.headers)  # encodes


def test_the_worst_headers_still_make_a_copy_far_below_the_default_frame_max() -> None:
    nasty = "\u00e9\x00" * 3000  # multi-byte and control characters, long
    headers = {f"x-h{i}": "v" * 5000 for i in range(40)}
    headers[HISTORY] = [nasty] * 100
    result = TaskResult(outcome="failed", match_id=nasty * 10, retryable=False, reason=nasty,
                        error=nasty, error_class=nasty)
    fate = decide(result, 1, headers, SETTINGS.replace(worker_id=nasty))
    assert encoded_headers(fate.headers) < 131_072 * FRAME_SHARE
    assert all("\x00" not in str(v) for k, v in fate.headers.items() if k.startswith("x-pewproc"))


def test_the_minimal_dead_letter_is_small_and_names_the_reason() -> None:
    body = orjson.dumps({"match_id": "z" * 50_000, "file_path": "x"})
    fate = minimal_dead_letter("settlement_crashed", body, SETTINGS)
    assert (fate.action, fate.queue) == ("dead_letter", DLQ)
    assert fate.headers[REASON] == "settlement_crashed" and fate.headers[MINIMAL] is True
    assert encoded_headers(fate.headers) < 1024


# Values other clients send that pika would change, or fail on: each kept as its bytes.
ODD_VALUES = {
    "x-double": b"d" + struct.pack(">d", 1.57),
    "x-nan": b"d" + struct.pack(">d", math.nan),
    "x-float": b"f" + struct.pack(">f", 0.5),
    "x-u64": b"L" + struct.pack(">Q", 2**64 - 1),
    "x-long": b"l" + struct.pack(">q", 7),
    "x-byte": b"b" + struct.pack(">b", 7),
    "x-decimal": b"D" + struct.pack(">Bi", 2, 100),
    "x-millis": b"T" + struct.pack(">Q", 1_796_398_000_123),  # milliseconds: year 58895
    "x-latin1": b"S" + struct.pack(">I", 4) + "café".encode("latin-1"),
    "x-deep": nested_tables(3000),
}


def encoded_table(values: dict[str, bytes]) -> bytes:
    body = b"".join(bytes([len(k)]) + k.encode() + v for k, v in values.items())
    return struct.pack(">I", len(body)) + body


def test_values_pika_would_change_are_kept_as_their_bytes_and_sent_back_the_same() -> None:
    install_faithful_field_codec()
    plain = {"x-text": b"S" + struct.pack(">I", 2) + b"ok", "x-int": b"I" + struct.pack(">i", 5)}
    decoded, _ = pika.data.decode_table(encoded_table({**ODD_VALUES, **plain}), 0)
    assert decoded["x-text"] == "ok" and decoded["x-int"] == 5  # round-trip as they are
    for name, wire in ODD_VALUES.items():
        pieces: list[bytes] = []
        pika.data.encode_value(pieces, decoded[name])
        assert b"".join(pieces) == wire, name  # sent back byte for byte
        assert name == "x-deep" or decoded[name] == RawField(wire), name
    assert attempt_of({ATTEMPT: decoded["x-double"]}) == 1
    fate = decide(permanent(), 1, {**decoded, "x-pewproc-attempt": decoded["x-u64"]}, SETTINGS)
    assert fate.headers[ATTEMPT] == 1
    assert fate.headers[DROPPED] == ["x-deep"]  # 21 KB: over the carried budget
    again, _ = pika.data.decode_table(b"".join(_encode_table(fate.headers)), 0)
    for name in set(ODD_VALUES) - {"x-deep"}:
        assert again[name] == decoded[name], name


def _encode_table(table: dict) -> list[bytes]:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    return pieces


def test_header_names_that_are_not_text_are_dropped_and_named() -> None:
    fate = decide(permanent(), 1, {b"\xff\xfe": "x", "x-ok": "y"}, SETTINGS)
    assert fate.headers["x-ok"] == "y"
    assert fate.headers[DROPPED] == ["b'\\xff\\xfe'"]


def test_every_reason_of_the_fates_table_is_exported_at_zero() -> None:
    """docs/reliability.md's table names every reason; each has its series from the start."""
    import re
    from pathlib import Path

    from pewproc.ops.metrics import PERMANENT_REASONS, TRANSIENT_REASONS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    table = doc[doc.index("## The fate of every case"):doc.index("## Copies that always fit")]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")]
    named = {r for row in rows[1:] for r in re.findall(r"`([a-z_]+)`", row[2])}
    assert len(named) > 25
    assert named == set(PERMANENT_REASONS) | set(TRANSIENT_REASONS)
