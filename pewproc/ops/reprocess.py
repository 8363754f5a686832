"""`pewproc reprocess`: publish matches again, chosen from the `matches` table.

After an upgrade that changes extraction (`EXTRACTOR_VERSION`), `--stale` finds every completed
match an older extraction wrote; other selectors pick matches by status, failure reason, id,
kind or start time. Each is published to the work queue as the message it first came in
(`matches.message`), with publisher confirms, so the worker replaces its rows as it would for
any redelivery. Selectors combine with AND.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import psycopg
from psycopg import sql

from pewproc.message import MatchMessage
from pewproc.ops.options import settings_options
from pewproc.settings import Settings
from pewproc.telemetry.version import EXTRACTOR_VERSION

_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(MatchMessage))


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which matches to publish again; every criterion given must hold."""

    stale: bool = False
    statuses: Sequence[str] = ()
    reasons: Sequence[str] = ()
    match_ids: Sequence[str] = ()
    kinds: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def is_empty(self) -> bool:
        return not (self.stale or self.statuses or self.reasons or self.match_ids or self.kinds
                    or self.since or self.until)

    def query(self) -> tuple[sql.Composed, list[Any]]:
        conditions: list[sql.Composable] = [sql.SQL("TRUE")]
        params: list[Any] = []
        if self.stale:
            conditions.append(sql.SQL(
                "status = 'completed' AND extractor_version IS DISTINCT FROM %s"))
            params.append(EXTRACTOR_VERSION)
        for column, values in (("status", self.statuses), ("error_reason", self.reasons),
                               ("match_id", self.match_ids), ("match_kind", self.kinds)):
            if values:
                conditions.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
                params.append(list(values))
        if self.since is not None:
            conditions.append(sql.SQL("started_at >= %s"))
            params.append(self.since)
        if self.until is not None:
            conditions.append(sql.SQL("started_at < %s"))
            params.append(self.until)
        query = sql.SQL(
            "SELECT match_id, file_path, map_name, game_mode, match_kind, message FROM matches"
            " WHERE {} ORDER BY started_at NULLS LAST, match_id"
        ).format(sql.SQL(" AND ").join(conditions))
        if self.limit is not None:
            query += sql.SQL(" LIMIT %s")
            params.append(self.limit)
        return query, params


def message_of(row: tuple[Any, ...]) -> MatchMessage | None:
    """The message a match came in; for rows from before `matches.message`, one rebuilt from
    the columns it left (None without a file path: nothing to process)."""
    match_id, file_path, map_name, game_mode, match_kind, stored = row
    if stored:
        fields = {k: v for k, v in stored.items() if k in _MESSAGE_FIELDS}
        return MatchMessage(**{**fields, "match_id": match_id,
                               "file_path": fields.get("file_path") or file_path})
    if not file_path:
        return None
    return MatchMessage(match_id=match_id, file_path=file_path, map_name=map_name,
                        game_mode=game_mode, game_type=match_kind)


def select_messages(conninfo: str, selection: Selection) -> tuple[list[MatchMessage], list[str]]:
    """The messages of the selected matches, and the ids of those that have none."""
    query, params = selection.query()
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(query, params).fetchall()
    messages, missing = [], []
    for row in rows:
        message = message_of(row)
        if message is None:
            missing.append(row[0])
        else:
            messages.append(message)
    return messages, missing


def publish_paced(settings: Settings, messages: Sequence[MatchMessage], rate: float | None,
                  published: Callable[[MatchMessage], None]) -> None:
    """Publish with confirms to the work queue, at most `rate` messages a second."""
    from pewproc.broker.connection import connect
    from pewproc.broker.publisher import ConfirmingPublisher
    from pewproc.broker.topology import declare_topology

    connection = connect(settings)
    try:
        declare_topology(connection, settings)
        publisher = ConfirmingPublisher(connection)
        started = time.monotonic()
        for n, message in enumerate(messages):
            if rate:
                pause = started + n / rate - time.monotonic()
                if pause > 0:
                    connection.sleep(pause)  # a pace, not a wait for anything: keeps heartbeats
            publisher.publish(settings.work_queue, message.to_json())
            published(message)
    finally:
        connection.close()


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


_TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])


@click.command()
@click.option("--stale", is_flag=True,
              help=f"Completed matches written by another extractor version than this code's "
                   f"({EXTRACTOR_VERSION}), or by one that did not record it.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["completed", "failed", "skipped"]),
              help="Matches with this status (repeatable).")
@click.option("--reason", "reasons", multiple=True,
              help="Matches with this error_reason (repeatable).")
@click.option("--match-id", "match_ids", multiple=True, help="This match (repeatable).")
@click.option("--kind", "kinds", multiple=True,
              help="Matches of this kind: official, custom... (repeatable).")
@click.option("--since", type=_TIME, default=None, help="Matches started at or after (UTC).")
@click.option("--until", type=_TIME, default=None, help="Matches started before (UTC).")
@click.option("--all", "every", is_flag=True, help="Every match in the table.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Publish at most this many.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Publish at most this many messages per second (default: no limit).")
@click.option("--dry-run", is_flag=True, help="List the matches, publish nothing.")
@settings_options("database", "broker", "queues")
def reprocess(settings: Settings, stale: bool, statuses: tuple[str, ...],
              reasons: tuple[str, ...], match_ids: tuple[str, ...], kinds: tuple[str, ...],
              since: datetime | None, until: datetime | None, every: bool, limit: int | None,
              rate: float | None, dry_run: bool) -> None:
    """Publish matches from the matches table to the work queue again, each as the message it
    came in, with publisher confirms."""
    selection = Selection(stale=stale, statuses=statuses, reasons=reasons, match_ids=match_ids,
                          kinds=kinds, since=_utc(since), until=_utc(until), limit=limit)
    if selection.is_empty() and not every:
        raise click.UsageError("say which matches: --stale, --status, --reason, --match-id, "
                               "--kind, --since/--until, or --all")
    try:
        messages, missing = select_messages(settings.conninfo, selection)
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot read the matches table: {exc}") from None
    for match_id in missing:
        click.echo(f"skipping {match_id}: no file_path recorded", err=True)
    if dry_run:
        for message in messages:
            click.echo(message.to_json().decode())
        click.echo(f"would publish {len(messages)} messages to {settings.work_queue}", err=True)
        return
    with click.progressbar(length=len(messages), label="reprocessing", file=sys.stderr) as bar:
        publish_paced(settings, messages, rate, lambda _: bar.update(1))
    click.echo(f"published {len(messages)} messages to {settings.work_queue}")
