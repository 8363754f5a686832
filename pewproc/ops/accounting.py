"""The soak's verdict as a pure function: what was published against what was found afterwards.

Kept apart from the soak's processes and faults so that it can be tested on its own, by feeding
it a lost, a duplicated, an orphaned or a wrongly dead-lettered message and watching it say so.
A verdict that cannot fail proves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Expected:
    """What was published: good matches with the rows each must end with, and poison."""

    rows: Mapping[str, Mapping[str, int]]  # good match id -> table -> rows it must have
    copies: Mapping[str, int]  # good match id -> messages published for it (duplicates too)
    bodies: Mapping[bytes, str]  # body of every good message -> its match id
    poison: Mapping[bytes, tuple[str, str]]  # poison body -> (its key, the reason it must get)


@dataclass(frozen=True)
class Observed:
    """What was found once the workers stopped."""

    matches: Mapping[str, tuple[str, int]]  # match id -> (status, times_processed)
    rows: Mapping[str, Mapping[str, int]]  # match id -> table -> rows stored, every table
    letters: list[tuple[bytes, str]]  # (body, reason) of every dead letter
    depths: Mapping[str, int | None]  # queue -> messages left (None: no answer)
    dead_letter_queue: str


@dataclass
class Verdict:
    completed: list[str] = field(default_factory=list)  # good, completed with exact rows
    lost: list[str] = field(default_factory=list)  # good, neither completed nor dead-lettered
    lost_poison: list[str] = field(default_factory=list)  # poison keys missing from the DLQ
    lost_copies: list[str] = field(default_factory=list)  # fewer writes than acked messages
    duplicated: list[str] = field(default_factory=list)  # more rows than the file gives
    mismatched: list[str] = field(default_factory=list)  # completed with other row counts
    orphaned: list[str] = field(default_factory=list)  # rows or dead letters of nothing sent
    wrongly_dead_lettered: list[str] = field(default_factory=list)  # good match in the DLQ
    wrong_reason: list[str] = field(default_factory=list)  # poison with another reason
    extra_poison_copies: int = 0  # dead-lettering is at least once: allowed, counted
    left_in_queues: int = 0

    def checks(self) -> dict[str, bool]:
        return {
            "lost_zero": not (self.lost or self.lost_poison or self.lost_copies),
            "duplicated_zero": not self.duplicated,
            "rows_exact": not self.mismatched,
            "nothing_orphaned": not self.orphaned,
            "no_good_match_dead_lettered": not self.wrongly_dead_lettered,
            "every_poison_with_expected_reason": not self.wrong_reason,
            "queues_empty_after_stop": self.left_in_queues == 0,
        }


def account(expected: Expected, observed: Observed) -> Verdict:
    verdict = Verdict()
    poison_seen: dict[str, list[str]] = {key: [] for key, _ in expected.poison.values()}
    dead_good: set[str] = set()
    for body, reason in observed.letters:
        if body in expected.poison:
            poison_seen[expected.poison[body][0]].append(reason)
        elif body in expected.bodies:
            dead_good.add(expected.bodies[body])
        else:
            verdict.orphaned.append(f"dead letter of an unknown message ({reason})")
    for match_id, want in sorted(expected.rows.items()):
        status, times = observed.matches.get(match_id, ("", 0))
        have = observed.rows.get(match_id, {})
        tables = set(want) | set(have)
        if any(have.get(t, 0) > want.get(t, 0) for t in tables):
            verdict.duplicated.append(match_id)
        exact = all(have.get(t, 0) == want.get(t, 0) for t in tables)
        if match_id in dead_good:
            verdict.wrongly_dead_lettered.append(match_id)
        if status == "completed" and exact:
            verdict.completed.append(match_id)
            if times < expected.copies.get(match_id, 1):  # each acked message wrote once at least
                verdict.lost_copies.append(match_id)
        elif status == "completed":
            verdict.mismatched.append(match_id)
        elif match_id not in dead_good:
            verdict.lost.append(match_id)
    for match_id, have in sorted(observed.rows.items()):
        if match_id not in expected.rows and any(have.values()):
            verdict.orphaned.append(f"rows of match {match_id}, never published")
    poison_reason = {key: reason for key, reason in expected.poison.values()}
    for key, reasons in sorted(poison_seen.items()):
        if not reasons:
            verdict.lost_poison.append(key)
        elif any(r != poison_reason[key] for r in reasons):
            verdict.wrong_reason.append(key)
        verdict.extra_poison_copies += max(0, len(reasons) - 1)
    verdict.left_in_queues = sum(1 if n is None else n for q, n in observed.depths.items()
                                 if q != observed.dead_letter_queue)
    return verdict

