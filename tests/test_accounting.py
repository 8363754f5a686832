"""The soak's verdict catches each way a message can go wrong (pure, no services)."""

from __future__ import annotations

from dataclasses import replace

from pewproc.ops.accounting import Expected, Observed, account

DLQ = "dlq"
ROWS = {"kills": 3, "landings": 2, "players": 4}
EXPECTED = Expected(
    rows={"m1": ROWS, "m2": ROWS},
    copies={"m1": 1, "m2": 2},
    bodies={b"m1": "m1", b"m2": "m2"},
    poison={b"bad": ("poison-0", "invalid_json")},
)
GOOD = Observed(
    matches={"m1": ("completed", 1), "m2": ("completed", 2), "poison-0": ("failed", 0)},
    rows={"m1": ROWS, "m2": ROWS},
    letters=[(b"bad", "invalid_json")],
    depths={"work": 0, "retry.1": 0, DLQ: 1},
    dead_letter_queue=DLQ,
)


def failed_checks(observed: Observed) -> list[str]:
    return [name for name, ok in account(EXPECTED, observed).checks().items() if not ok]


def test_a_clean_run_passes_every_check() -> None:
    verdict = account(EXPECTED, GOOD)
    assert failed_checks(GOOD) == []
    assert verdict.completed == ["m1", "m2"]


def test_a_lost_match_is_caught() -> None:
    observed = replace(GOOD, matches={"m1": ("completed", 1)}, rows={"m1": ROWS})
    assert failed_checks(observed) == ["lost_zero"]
    assert account(EXPECTED, observed).lost == ["m2"]


def test_a_lost_acked_copy_is_caught() -> None:
    observed = replace(GOOD, matches={**GOOD.matches, "m2": ("completed", 1)})
    assert account(EXPECTED, observed).lost_copies == ["m2"]
    assert failed_checks(observed) == ["lost_zero"]


def test_lost_rows_of_one_table_are_caught() -> None:
    observed = replace(GOOD, rows={**GOOD.rows, "m1": {**ROWS, "players": 0}})
    assert failed_checks(observed) == ["rows_exact"]


def test_a_lost_poison_message_is_caught() -> None:
    observed = replace(GOOD, letters=[], depths={**GOOD.depths, DLQ: 0})
    assert account(EXPECTED, observed).lost_poison == ["poison-0"]
    assert failed_checks(observed) == ["lost_zero"]


def test_a_duplicated_match_is_caught_in_any_table() -> None:
    observed = replace(GOOD, rows={**GOOD.rows, "m2": {**ROWS, "landings": 4}})
    assert account(EXPECTED, observed).duplicated == ["m2"]
    assert failed_checks(observed) == ["duplicated_zero", "rows_exact"]


def test_orphaned_rows_and_unknown_dead_letters_are_caught() -> None:
    observed = replace(GOOD, rows={**GOOD.rows, "stranger": {"kills": 1}},
                       letters=[*GOOD.letters, (b"who?", "invalid_json")])
    assert len(account(EXPECTED, observed).orphaned) == 2
    assert failed_checks(observed) == ["nothing_orphaned"]


def test_a_wrongly_dead_lettered_match_is_caught() -> None:
    observed = replace(GOOD, matches={**GOOD.matches, "m1": ("failed", 0)}, rows={"m2": ROWS},
                       letters=[*GOOD.letters, (b"m1", "processing_error")])
    verdict = account(EXPECTED, observed)
    assert verdict.wrongly_dead_lettered == ["m1"] and verdict.lost == []
    assert failed_checks(observed) == ["no_good_match_dead_lettered"]


def test_a_good_match_both_completed_and_dead_lettered_is_still_wrong() -> None:
    observed = replace(GOOD, letters=[*GOOD.letters, (b"m1", "timeout")])
    assert failed_checks(observed) == ["no_good_match_dead_lettered"]


def test_poison_with_another_reason_is_caught_and_extra_copies_counted() -> None:
    observed = replace(GOOD, letters=[(b"bad", "invalid_json"), (b"bad", "invalid_json")])
    assert account(EXPECTED, observed).extra_poison_copies == 1
    assert failed_checks(observed) == []  # at least once: a second copy is allowed
    observed = replace(GOOD, letters=[(b"bad", "timeout")])
    assert failed_checks(observed) == ["every_poison_with_expected_reason"]


def test_messages_left_in_a_queue_or_an_unanswered_queue_are_caught() -> None:
    assert failed_checks(replace(GOOD, depths={**GOOD.depths, "retry.1": 2})) == [
        "queues_empty_after_stop"]
    assert failed_checks(replace(GOOD, depths={**GOOD.depths, "work": None})) == [
        "queues_empty_after_stop"]
