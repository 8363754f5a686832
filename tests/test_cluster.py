"""A three-node RabbitMQ cluster of the test's own, and a node crash under a running worker.

The nodes run beside every other broker on this machine, on ports and with node names and data
folders of their own (see pewproc.ops.localcluster); they are killed and removed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pewproc.broker.connection import connect
from pewproc.ops.localcluster import LocalCluster
from pewproc.settings import Settings
from tests.support import (
    WorkerLauncher,
    expected_rows,
    make_match,
    match_rows,
    message_for,
    publish,
    queue_counts,
    stored_rows,
    wait_for,
)
from tests.test_faults import assert_accounted

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.postgres]


class AnyLiveNode:
    """rabbitmqctl against whichever node of the cluster is up, for the support helpers."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def rabbitctl_output(self, *args: str) -> str:
        return self.cluster.alive()[0].ctl(*args)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    nodes = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def completed(db: psycopg.Connection, ids: list[str]) -> bool:
    return all((match_rows(db, m) or {}).get("status") == "completed" for m in ids)


def test_a_node_crash_under_a_running_worker_loses_and_doubles_nothing(
    cluster: LocalCluster, settings: Settings, db: psycopg.Connection,
    launch_worker: WorkerLauncher,
) -> None:
    settings = settings.replace(rabbitmq_url=cluster.urls, retry_delays="1", max_retries=3)
    first, *others = cluster.nodes
    ctl: Any = AnyLiveNode(cluster)
    # Given the operator's quorum work queue, its leader on the first node
    connection = connect(settings)
    connection.channel().queue_declare(settings.work_queue, durable=True,
                                       arguments={"x-queue-type": "quorum"})
    connection.close()
    assert cluster.queue_leader(settings.work_queue) is first
    # And a worker given every node, connected to the first
    worker = launch_worker(settings)
    worker.wait_consuming()
    assert any(r["message"].startswith(f"connected to broker node 127.0.0.1:{first.port} ")
               for r in worker.log_records())
    ids = [f"cl-{n}" for n in range(10)]
    paths = {m: make_match(settings, m, seed=200 + n, players=24) for n, m in enumerate(ids)}
    publish(settings, [message_for(m, paths[m]) for m in ids])

    # When the node holding its connection and the queue's leader is SIGKILLed mid-run
    wait_for(lambda: sum(o["action"] == "ack" for o in worker.outcomes()) >= 2, 60,
             "work under way")
    first.kill()
    wait_for(lambda: any(r["message"].startswith(f"connected to broker node 127.0.0.1:"
                                                 f"{others[0].port} ")
                         for r in worker.log_records()), 60, "the worker on the next node")
    assert cluster.queue_leader(settings.work_queue) in others

    # Then every match completes with exactly its rows, and the retry and dead-letter paths work
    late = make_match(settings, "cl-retry", seed=220)
    whole = late.read_bytes()
    late.write_bytes(whole[: len(whole) // 2])  # still being written: retried
    publish(settings, [message_for("cl-retry", late),
                       message_for("cl-dead", Path(settings.telemetry_root) / "none.json.gz")])
    wait_for(lambda: any(o["match_id"] == "cl-retry" and o["action"] == "retry"
                         for o in worker.outcomes()), 60, "the retry")
    late.write_bytes(whole)
    wait_for(lambda: completed(db, [*ids, "cl-retry"]), 120, "every match completed")
    assert_accounted(db, settings, ctl, {**paths, "cl-retry": late}, [("cl-dead", "file_missing")])
    # Redelivered at most what was in flight on the lost connection (the prefetch)
    times = [match_rows(db, m)["times_processed"] for m in ids]  # type: ignore[index]
    assert min(times) == 1 and sum(times) - len(ids) <= settings.prefetch, times

    # And the node, restarted, rejoins; the worker goes on
    cluster.restart(first)
    wait_for(lambda: first.full_name in first.ctl("cluster_status", "--formatter", "json")
             and len(cluster.alive()) == 3, 60, "the node back in the cluster")
    after = make_match(settings, "cl-after", seed=221)
    publish(settings, [message_for("cl-after", after)])
    wait_for(lambda: completed(db, ["cl-after"]), 60, "a match after the restart")
    assert stored_rows(db, "cl-after") == expected_rows(settings, after, "cl-after")
    assert queue_counts(ctl, settings.work_queue)[:2] == (0, 0)
    assert worker.terminate() == 0
