"""`pewproc dlq list` and `replay`: selection, limits, order, and duplicate copies."""

from __future__ import annotations

import json

import pika
import pytest
from click.testing import CliRunner

from pewproc import fate
from pewproc.broker.connection import connect
from pewproc.ops.cli import main as cli
from pewproc.settings import Settings
from tests.support import publish

pytestmark = [pytest.mark.rabbitmq]


def dead_letter(settings: Settings, match_id: str, reason: str, message_id: str) -> None:
    publish(settings, [json.dumps({"match_id": match_id, "file_path": "x"}).encode()],
            queue=settings.dead_letter_queue,
            headers={fate.REASON: reason, fate.MATCH_ID: match_id, fate.ATTEMPT: 3},
            properties=pika.BasicProperties(message_id=message_id))


def drain(settings: Settings, queue: str) -> list[tuple[str, str | None]]:
    """(match id, message id) of every message of a queue, in order; the queue ends empty."""
    connection = connect(settings)
    channel = connection.channel()
    out = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((json.loads(body)["match_id"], properties.message_id))
    connection.close()
    return out


def cli_run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=settings.to_env())
    assert result.exit_code == 0, result.output
    return result.output


def test_replay_selects_limits_keeps_order_and_sends_each_message_once(
    settings: Settings, broker,
) -> None:
    # Given five dead letters, one of them a second copy of the first
    for match_id, reason, message_id in [("a", "r1", "id-a"), ("b", "r2", "id-b"),
                                         ("a", "r1", "id-a"), ("c", "r1", "id-c"),
                                         ("d", "r2", "id-d")]:
        dead_letter(settings, match_id, reason, message_id)
    listed = [json.loads(line) for line in
              cli_run(settings, "dlq", "list", "--json").splitlines()]
    assert [(d["match_id"], d["duplicate"]) for d in listed] == [
        ("a", False), ("b", False), ("a", True), ("c", False), ("d", False)]
    assert [d["match_id"] for d in json.loads("[" + ",".join(
        cli_run(settings, "dlq", "list", "--json", "--limit", "2").splitlines()) + "]")] == [
        "a", "b"]

    # When replaying the oldest one of reason r1 only
    out = cli_run(settings, "dlq", "replay", "--reason", "r1", "--limit", "1")
    assert "replayed 1 " in out and "1 duplicates removed" in out and "3 left" in out
    # Then a's copy is gone with it, and the rest keep their order
    assert drain(settings, settings.work_queue) == [("a", "id-a")]

    # One match by id; then all, oldest first
    assert "replayed 1 " in cli_run(settings, "dlq", "replay", "--match-id", "d")
    assert drain(settings, settings.work_queue) == [("d", "id-d")]
    assert "replayed 2 " in cli_run(settings, "dlq", "replay", "--all")
    assert drain(settings, settings.work_queue) == [("b", "id-b"), ("c", "id-c")]
    assert drain(settings, settings.dead_letter_queue) == []


def test_replay_needs_a_selection(settings: Settings, broker) -> None:
    result = CliRunner().invoke(cli, ["dlq", "replay"], env=settings.to_env())
    assert result.exit_code == 2 and "--reason, --match-id or --all" in result.output
