"""circle_positions: samples of tracked players against the circles of the latest game state."""

from __future__ import annotations

import pytest

from tests.telemetry.events import PLANE, at, char, game_state, position, rows, run

pytestmark = pytest.mark.usefixtures("decode_path")  # typed and general decoding

A, B, BOT = char("account.a", 1), char("account.b", 2), char("ai.1", 3)


def moved(character: dict, x: float, y: float) -> dict:
    return char(character["accountId"], character["teamId"], x, y, 5)


def match() -> list[dict]:
    return [
        position(1, moved(A, 0, 0), 0, phase=0),  # lobby: no row
        position(2, moved(A, 10, 0), 1, phase=PLANE),  # no circle yet
        game_state(3, (100, 100, 50), (110, 100, 20)),
        position(4, moved(A, 100, 130), 3),  # 30 m from the centre: inside
        position(5, moved(B, 100, 180), 4),  # 80 m: outside
        position(6, moved(BOT, 100, 100), 5),  # bots are never tracked
        game_state(7, (100, 100, 25), None),  # shrunk; no next circle announced
        position(8, moved(A, 100, 130), 7),  # now outside
    ]


def test_rows_against_the_current_and_next_circle() -> None:
    got = rows(run(match()), "circle_positions")
    assert [(r["account_id"], r["sampled_at"]) for r in got] == [
        ("account.a", at(2)), ("account.a", at(4)), ("account.b", at(5)), ("account.a", at(8))]
    before, inside, outside, shrunk = got
    assert (before["phase"], before["elapsed_s"], before["x_m"], before["zone_radius_m"],
            before["is_outside"]) == (PLANE, 1, 10.0, None, None)
    assert (inside["zone_x_m"], inside["zone_y_m"], inside["zone_radius_m"]) == (100, 100, 50)
    assert (inside["dist_centre_m"], inside["dist_edge_m"], inside["is_outside"]) == (
        pytest.approx(30.0), pytest.approx(20.0), False)
    assert (inside["next_x_m"], inside["next_y_m"], inside["next_radius_m"]) == (110, 100, 20)
    assert (outside["dist_edge_m"], outside["is_outside"]) == (pytest.approx(-30.0), True)
    assert (shrunk["zone_radius_m"], shrunk["dist_edge_m"], shrunk["is_outside"]) == (
        25, pytest.approx(-5.0), True)
    assert (shrunk["next_x_m"], shrunk["next_radius_m"]) == (None, None)
    assert inside["z_m"] == 5.0 and inside["team_id"] == 1


def test_only_tracked_players() -> None:
    got = rows(run(match(), tracked=frozenset({"account.b"})), "circle_positions")
    assert [r["account_id"] for r in got] == ["account.b"]
