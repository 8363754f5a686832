"""Shared fixtures: the real match from ../shared (when present), a throwaway database, a broker.

The broker is a throwaway RabbitMQ node started by pytest-rabbitmq on random ports, so tests
never touch a broker anyone else uses; the database is a throwaway database created on the local
PostgreSQL server (PEWPROC_TEST_PG names another server) and dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pytest_rabbitmq import factories

from pewproc.settings import Settings
from pewproc.storage.migrate import migrate
from tests.pg_server import PrivatePostgres
from tests.support import RunningWorker, WorkerLauncher

SHARED_DIR = Path(
    os.environ.get("PEWPROC_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
REAL_MATCH_NAME = "custom-2025-07-12-c2fb5093.json.gz"
ADMIN_DSN = os.environ.get(
    "PEWPROC_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)

rabbitmq_node = factories.rabbitmq_proc()


_SERVICES = {"rabbitmq": {"broker"}, "postgres": {"database"}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the services its fixtures start (`-m "not rabbitmq"` and so on)."""
    for item in items:
        for marker, fixtures in _SERVICES.items():
            if fixtures & set(getattr(item, "fixturenames", ())):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def shared_file() -> Callable[[str], Path]:
    """Reference files kept beside the repository (a real match, Komodo's schemas), by relative
    path; a test that needs one that is absent is skipped."""

    def find(relative: str) -> Path:
        path = SHARED_DIR / relative
        if not path.is_file():
            pytest.skip(f"{relative} not found in {SHARED_DIR} (set PEWPROC_SHARED_DIR to the "
                        "folder that holds it)")
        return path

    return find


@pytest.fixture(scope="session")
def real_match_file(shared_file: Callable[[str], Path]) -> Path:
    """The real recent match kept beside the repository; skipped where it is absent."""
    return shared_file(f"telemetry/{REAL_MATCH_NAME}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A throwaway RabbitMQ node. Its own config file keeps it off the system node's port."""
    config = tmp_path_factory.mktemp("rabbitmq") / "rabbitmq.conf"
    config.write_text("log.file.level = warning\n")
    os.environ["RABBITMQ_CONFIG_FILE"] = str(config)
    return request.getfixturevalue("rabbitmq_node")


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """conninfo of a throwaway database with pewproc's schema migrated."""
    name = f"pewproc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    migrate(Settings.from_env({}, database_url=conninfo).conninfo, "pewproc")
    yield conninfo
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def settings(broker, database: str, tmp_path: Path) -> Settings:  # type: ignore[no-untyped-def]
    """Settings of one test: its own queues (a fresh ENVIRONMENT) and its own telemetry folder."""
    return Settings.from_env(
        {},
        rabbitmq_host=broker.host,
        rabbitmq_port=broker.port,
        database_url=database,
        environment=f"test-{uuid.uuid4().hex[:8]}",
        telemetry_root=str(tmp_path),
        match_kinds="*",
        metrics_port=0,
        worker_pool_size=2,
        retry_delays="1,2",
        max_retries=2,
        stats_interval=1.0,
        log_format="json",
        shutdown_timeout=30.0,
    )


@pytest.fixture
def private_pg(settings: Settings) -> Iterator[tuple[PrivatePostgres, Settings]]:
    """A PostgreSQL server of the test's own, which it may stop and start; settings pointing
    at it (migrated), with a short pool timeout so outages show quickly."""
    server = PrivatePostgres()
    try:
        server.start()
        settings = settings.replace(database_url=server.conninfo, db_pool_timeout=2.0)
        migrate(settings.conninfo, settings.postgres_schema)
        yield server, settings
    finally:
        server.remove()


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def launch_worker(tmp_path: Path) -> Iterator[WorkerLauncher]:
    """Starts `python -m pewproc.parallel_worker` processes; stops them all at the end."""
    started: list[RunningWorker] = []

    def launch(settings: Settings, *args: str, **env: str) -> RunningWorker:
        worker = RunningWorker.start(settings, tmp_path / f"worker-{len(started)}.log", args, env)
        started.append(worker)
        return worker

    yield launch
    for worker in started:
        worker.kill()
