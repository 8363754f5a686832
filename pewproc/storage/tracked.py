"""Whose hits and circle samples are stored: TRACKED_PLAYERS, or the tracked_players table.

With TRACKED_PLAYERS=table each process caches the table's account ids and re-reads them at most
every TRACKED_PLAYERS_REFRESH_SECONDS, so a site tracking hundreds of players pays one small
query per process per period, not one per match. A table that cannot be read fails the match as
transient: processing it with nobody tracked would silently lose its rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from pewproc.errors import TransientError
from pewproc.settings import Settings
from pewproc.storage.sqlstate import describe_database_error

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class TrackedPlayers:
    """The tracked set a match is extracted with (None: every human player)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.from_table = settings.tracked_from_table
        self.fixed = None if self.from_table else settings.tracked_player_set
        self.refresh_s = settings.tracked_players_refresh
        self.clock = clock
        self.cached: frozenset[str] | None = None
        self.read_at = 0.0

    def current(self, connect: Connect) -> frozenset[str] | None:
        if not self.from_table:
            return self.fixed
        now = self.clock()
        if self.cached is None or now - self.read_at >= self.refresh_s:
            self.cached = read_tracked_players(connect)
            self.read_at = now
        return self.cached


def read_tracked_players(connect: Connect) -> frozenset[str]:
    """Every account id of `tracked_players`; a TransientError naming the cause if unreadable."""
    try:
        with connect() as conn:
            rows = conn.execute("SELECT account_id FROM tracked_players").fetchall()
    except psycopg.Error as exc:
        message = (f"TRACKED_PLAYERS=table, but the tracked_players table cannot be read "
                   f"({type(exc).__name__}: {describe_database_error(exc)}); run "
                   "`pewproc db migrate` if it is missing; the match will be retried")
        log.error("%s", message)
        raise TransientError(message, "tracked_players_unavailable") from None
    return frozenset(row[0] for row in rows)
