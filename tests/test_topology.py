"""The queues pewproc declares, against a work queue an operator made a quorum queue."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pika.exceptions import ChannelClosedByBroker

from pewproc.broker.connection import connect
from pewproc.broker.topology import queue_arguments, work_queue_type
from pewproc.settings import Settings
from tests.support import (
    WorkerLauncher,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    rabbitmqctl_table,
    wait_for,
)
from tests.test_faults import assert_accounted

pytestmark = [pytest.mark.rabbitmq]


def declare_quorum_work_queue(settings: Settings) -> None:
    """What an operator does on a cluster: the work queue as a quorum queue, with a delivery
    limit pewproc knows nothing about."""
    connection = connect(settings)
    try:
        connection.channel().queue_declare(settings.work_queue, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 50})
    finally:
        connection.close()


def queue_types(broker, settings: Settings) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Type and arguments of the test's queues, as the broker lists them."""
    return {row[0]: (row[1], row[2]) for row in rabbitmqctl_table(
        broker, "list_queues", "name", "type", "arguments") if settings.environment in row[0]}


def test_quorum_retry_queues_dead_letter_at_least_once() -> None:
    settings = Settings.from_env({}, retry_delays="1,5")
    arguments = queue_arguments(settings, "quorum")
    assert arguments[settings.dead_letter_queue] == {"x-queue-type": "quorum"}
    for delay in (1, 5):
        retry = arguments[settings.retry_queue(delay)]
        assert retry is not None
        assert (retry["x-queue-type"], retry["x-dead-letter-strategy"], retry["x-overflow"]) == (
            "quorum", "at-least-once", "reject-publish")
    assert queue_arguments(settings)[settings.dead_letter_queue] is None
    assert "x-queue-type" not in (queue_arguments(settings)[settings.retry_queue(1)] or {})


@pytest.mark.postgres
@pytest.mark.slow
def test_a_pre_existing_quorum_work_queue_is_used_as_it_is_and_pewproc_queues_follow_it(
    settings: Settings, db: psycopg.Connection, broker, launch_worker: WorkerLauncher,
) -> None:
    # Given an operator's quorum work queue
    declare_quorum_work_queue(settings)
    connection = connect(settings)
    assert work_queue_type(connection, settings) == "quorum"
    # The upstream publisher's plain declaration is refused by it (see docs/deployment.md)
    with pytest.raises(ChannelClosedByBroker) as refused:
        connection.channel().queue_declare(settings.work_queue, durable=True)
    assert refused.value.reply_code == 406
    connection.close()
    # When the worker runs a match that is retried, then completes, and one that is dead-lettered
    path = make_match(settings, "q-retry", seed=111)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    worker = launch_worker(settings)
    worker.wait_consuming()
    publish(settings, [message_for("q-retry", path),
                       message_for("q-dead", Path(settings.telemetry_root) / "none.json.gz")])
    wait_for(lambda: any(o["action"] == "retry" for o in worker.outcomes()), 60, "a retry")
    path.write_bytes(whole)
    wait_for(lambda: (match_rows(db, "q-retry") or {}).get("status") == "completed", 60, "done")
    # Then its own queues are quorum queues, the retry ones dead-lettering at least once, and
    # the work queue is as the operator made it
    types = queue_types(broker, settings)
    assert types[settings.work_queue][0] == "quorum"
    assert "x-delivery-limit" in types[settings.work_queue][1]
    assert types[settings.dead_letter_queue][0] == "quorum"
    for delay in settings.retry_delay_list:
        kind, arguments = types[settings.retry_queue(delay)]
        assert kind == "quorum" and "at-least-once" in arguments and "reject-publish" in arguments
    assert_accounted(db, settings, broker, {"q-retry": path}, [("q-dead", "file_missing")])
    assert queue_counts(broker, settings.work_queue)[2] == 1
    assert worker.terminate() == 0


def test_a_classic_work_queue_keeps_classic_queues(settings: Settings, broker) -> None:
    publish(settings, [])  # declares the topology on a fresh environment
    connection = connect(settings)
    assert work_queue_type(connection, settings) == "classic"
    connection.close()
    assert {kind for kind, _ in queue_types(broker, settings).values()} == {"classic"}
