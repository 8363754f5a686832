"""`pewproc players`: the tracked_players table, read by workers when TRACKED_PLAYERS=table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from pewproc.ops.options import settings_options
from pewproc.settings import Settings


@contextmanager
def _table(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one change; database errors as one line that says what to do."""
    if not settings.tracked_from_table:
        click.echo(f"note: TRACKED_PLAYERS is {settings.tracked_players!r}, not 'table': workers "
                   "so configured do not read this table", err=True)
    try:
        with psycopg.connect(settings.conninfo) as conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        raise click.ClickException(
            "no tracked_players table in schema "
            f"{settings.postgres_schema}: run `pewproc db migrate` first") from None
    except psycopg.Error as exc:
        raise click.ClickException(f"database error: {exc}") from None


@click.group()
def players() -> None:
    """Players whose damage events and circle positions are stored (TRACKED_PLAYERS=table)."""


@players.command("add")
@click.argument("account_ids", nargs=-1, required=True)
@click.option("--name", default=None, help="A name to note with them (for people, not matching).")
@settings_options("database", "processing")
def players_add(settings: Settings, account_ids: tuple[str, ...], name: str | None) -> None:
    """Track these account ids (adding one already tracked updates its name, if given)."""
    with _table(settings) as conn:
        added = 0
        for account_id in account_ids:
            cur = conn.execute(
                "INSERT INTO tracked_players (account_id, player_name) VALUES (%s, %s)"
                " ON CONFLICT (account_id) DO UPDATE"
                " SET player_name = coalesce(EXCLUDED.player_name, tracked_players.player_name)"
                " RETURNING xmax = 0", (account_id, name))
            added += bool(cur.fetchone()[0])  # type: ignore[index]
    click.echo(f"added {added}, {len(account_ids) - added} already tracked")


@players.command("remove")
@click.argument("account_ids", nargs=-1, required=True)
@settings_options("database", "processing")
def players_remove(settings: Settings, account_ids: tuple[str, ...]) -> None:
    """Stop tracking these account ids."""
    with _table(settings) as conn:
        removed = conn.execute("DELETE FROM tracked_players WHERE account_id = ANY(%s)",
                               (list(account_ids),)).rowcount
    click.echo(f"removed {removed}, {len(account_ids) - removed} were not tracked")


@players.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@settings_options("database", "processing")
def players_list(settings: Settings, as_json: bool) -> None:
    """Every tracked player, oldest first."""
    with _table(settings) as conn:
        rows = conn.execute("SELECT account_id, player_name, added_at FROM tracked_players"
                            " ORDER BY added_at, account_id").fetchall()
    for account_id, player_name, added_at in rows:
        if as_json:
            click.echo(json.dumps({"account_id": account_id, "player_name": player_name,
                                   "added_at": added_at.isoformat()}))
        else:
            click.echo(f"{account_id:<44} {player_name or '-':<24} {added_at:%Y-%m-%d %H:%M}")
    if not as_json:
        click.echo(f"{len(rows)} tracked players", err=True)
