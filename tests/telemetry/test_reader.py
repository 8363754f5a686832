"""Unit tests of pewproc.telemetry.reader: locating a file safely and reading it within limits.

Every failure is a TelemetryError whose `reason` is asserted; files live in tmp_path.
"""

from __future__ import annotations

import gzip
import os
import time
import tracemalloc
import zlib
from pathlib import Path

import orjson
import pytest

from pewproc.errors import PermanentError, TelemetryError, TransientError
from pewproc.telemetry.reader import (
    ReadLimits,
    decompress,
    parse_events,
    read_telemetry,
    resolve_inside,
)
from tests.support import run_obeying_file_modes

EVENTS = [
    {"_T": "LogMatchDefinition", "MatchId": "match.bro.official.x.steam.squad.na.1", "_D": "a"},
    {"_T": "LogMatchStart", "mapName": "Baltic_Main", "common": {"isGame": 0}, "_D": "b"},
    {"_T": "LogParachuteLanding", "distance": 12.5, "common": {"isGame": 0.1}, "_D": "c"},
]
JSON = orjson.dumps(EVENTS)
LIMITS = ReadLimits(max_file_bytes=10_000_000, max_json_bytes=10_000_000, max_events=1000)
MB = 1 << 20


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read(path: Path, limits: ReadLimits = LIMITS) -> list[dict]:
    """Every key of every event: these tests are about the bytes, not the decoding."""
    return read_telemetry(path, limits, typed=False).events


def reason_of(path: Path, limits: ReadLimits = LIMITS) -> str:
    with pytest.raises(TelemetryError) as info:
        read_telemetry(path, limits)
    assert isinstance(info.value, PermanentError)
    return info.value.reason


# Formats, told by magic bytes, not by name


def test_plain_json(tmp_path: Path) -> None:
    result = read_telemetry(write(tmp_path / "raw.json.gz", JSON), LIMITS, typed=False)  # lies
    assert result.events == EVENTS
    assert result.file_bytes == len(JSON)
    assert result.json_bytes == len(JSON)
    assert min(result.read_seconds, result.decompress_seconds, result.parse_seconds) >= 0


def test_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(JSON)
    result = read_telemetry(write(tmp_path / "raw.json", packed), LIMITS, typed=False)
    assert result.events == EVENTS
    assert result.file_bytes == len(packed)
    assert result.json_bytes == len(JSON)


def test_double_gzip(tmp_path: Path) -> None:
    assert read(write(tmp_path / "f", gzip.compress(gzip.compress(JSON)))) == EVENTS


def test_triple_gzip(tmp_path: Path) -> None:
    assert read(write(tmp_path / "f", gzip.compress(gzip.compress(gzip.compress(JSON))))) \
        == EVENTS


def test_four_layers_of_gzip_are_not_undone_and_fail_as_telemetry_not_json(tmp_path: Path) -> None:
    data = JSON
    for _ in range(4):
        data = gzip.compress(data)
    assert reason_of(write(tmp_path / "f", data)) == "telemetry_not_json"


def test_multi_member_gzip_is_concatenated(tmp_path: Path) -> None:
    half = len(JSON) // 2
    data = gzip.compress(JSON[:half]) + gzip.compress(JSON[half:])
    assert read(write(tmp_path / "f", data)) == EVENTS


def test_trailing_garbage_after_gzip_is_ignored(tmp_path: Path) -> None:
    assert read(write(tmp_path / "f", gzip.compress(JSON) + b"trailing garbage")) == EVENTS
    assert read(write(tmp_path / "g", gzip.compress(JSON) + bytes(512))) == EVENTS


def test_trailing_garbage_that_starts_like_gzip_is_corrupt_gzip(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path / "f", gzip.compress(JSON) + b"\x1f\x8bnot gzip")) \
        == "corrupt_gzip"


def test_an_empty_event_list_is_read(tmp_path: Path) -> None:
    assert read(write(tmp_path / "f", gzip.compress(b"[]"))) == []


# Limits


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of zeros, gzipped (about 0.9 MB), built a megabyte at a time."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    parts = [packer.compress(zeros) for _ in range(200)]
    parts.append(packer.flush())
    return b"".join(parts)


def test_a_gzip_bomb_fails_as_json_too_large_without_inflating(
    tmp_path: Path, gzip_bomb: bytes
) -> None:
    path = write(tmp_path / "bomb.json.gz", gzip_bomb)
    limits = ReadLimits(max_file_bytes=10 * MB, max_json_bytes=MB, max_events=1000)
    tracemalloc.start()
    try:
        with pytest.raises(TelemetryError) as info:
            read_telemetry(path, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "json_too_large"
    # The compressed file (about 0.9 MB) plus at most the 1 MB cap of output, a few copies.
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB"


def test_a_double_gzipped_bomb_fails_as_json_too_large(gzip_bomb: bytes) -> None:
    with pytest.raises(TelemetryError) as info:
        decompress(gzip.compress(gzip_bomb), MB)
    assert info.value.reason == "json_too_large"


def test_many_small_members_count_against_one_cap() -> None:
    member = gzip.compress(bytes(1000))
    assert len(decompress(member * 10, 10_000)) == 10_000
    with pytest.raises(TelemetryError) as info:
        decompress(member * 11, 10_000)
    assert info.value.reason == "json_too_large"


def test_gzip_output_of_exactly_the_cap_is_accepted() -> None:
    assert decompress(gzip.compress(JSON), len(JSON)) == JSON
    with pytest.raises(TelemetryError) as info:
        decompress(gzip.compress(JSON), len(JSON) - 1)
    assert info.value.reason == "json_too_large"


def test_plain_json_over_the_cap_is_json_too_large(tmp_path: Path) -> None:
    limits = ReadLimits(max_file_bytes=10 * MB, max_json_bytes=len(JSON) - 1, max_events=1000)
    assert reason_of(write(tmp_path / "f", JSON), limits) == "json_too_large"


def test_a_file_over_max_file_bytes_is_file_too_large(tmp_path: Path) -> None:
    path = write(tmp_path / "f", gzip.compress(JSON))
    size = path.stat().st_size
    assert read(path, ReadLimits(size, 10 * MB, 1000)) == EVENTS
    assert reason_of(path, ReadLimits(size - 1, 10 * MB, 1000)) == "file_too_large"


def test_too_many_events(tmp_path: Path) -> None:
    path = write(tmp_path / "f", JSON)
    assert read(path, ReadLimits(MB, MB, len(EVENTS))) == EVENTS
    assert reason_of(path, ReadLimits(MB, MB, len(EVENTS) - 1)) == "too_many_events"


# Damaged files


def test_truncated_gzip_is_truncated(tmp_path: Path) -> None:
    packed = gzip.compress(JSON * 50)
    for cut in (len(packed) // 2, len(packed) - 1, 12):
        assert reason_of(write(tmp_path / f"f{cut}", packed[:cut])) == "truncated", cut


def test_a_truncated_second_member_is_truncated(tmp_path: Path) -> None:
    second = gzip.compress(JSON)
    data = gzip.compress(b"[") + second[: len(second) // 2]
    assert reason_of(write(tmp_path / "f", data)) == "truncated"


def test_corrupt_deflate_data_is_corrupt_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(JSON)
    header = packed[:10]
    assert reason_of(write(tmp_path / "f", header + b"\xff" * 64)) == "corrupt_gzip"


def test_a_bad_crc_is_corrupt_gzip(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(JSON))
    packed[-8] ^= 0xFF  # first byte of the CRC32 trailer
    assert reason_of(write(tmp_path / "f", bytes(packed))) == "corrupt_gzip"


def test_json_truncated_in_the_middle_of_an_event_is_telemetry_not_json(tmp_path: Path) -> None:
    cut = JSON[: JSON.index(b"LogMatchStart") + 5]
    assert reason_of(write(tmp_path / "plain", cut)) == "telemetry_not_json"
    assert reason_of(write(tmp_path / "gz", gzip.compress(cut))) == "telemetry_not_json"


def test_an_empty_file_is_telemetry_not_json(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path / "f", b"")) == "telemetry_not_json"


@pytest.mark.parametrize("data", [b'{"events": []}', b'"text"', b"42", b"null"])
def test_json_that_is_not_a_list_is_not_event_list(tmp_path: Path, data: bytes) -> None:
    assert reason_of(write(tmp_path / "f", gzip.compress(data))) == "not_event_list"


@pytest.mark.parametrize("data", [b"[1, 2, 3]", b'["LogMatchStart"]', b"[[{}]]", b"[null, {}]"])
def test_a_list_of_non_objects_is_not_event_list(tmp_path: Path, data: bytes) -> None:
    assert reason_of(write(tmp_path / "f", data)) == "not_event_list"


def test_a_non_object_after_the_first_event_is_not_event_list() -> None:
    with pytest.raises(TelemetryError) as info:
        parse_events(b'[{"_T": "LogMatchStart"}, 42]', 1000)
    assert info.value.reason == "not_event_list"


def test_reading_a_missing_file_is_file_missing(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "nope.json.gz") == "file_missing"


def test_reading_a_directory_is_file_unreadable(tmp_path: Path) -> None:
    assert reason_of(tmp_path) == "file_unreadable"


# resolve_inside


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "matchID=m1").mkdir(parents=True)
    write(root / "matchID=m1" / "raw.json.gz", gzip.compress(JSON))
    return root


def resolve_reason(file_path: str | Path, root: Path) -> str:
    with pytest.raises(TelemetryError) as info:
        resolve_inside(str(file_path), root)
    return info.value.reason


def test_a_relative_path_resolves_under_the_root(root: Path) -> None:
    real = resolve_inside("matchID=m1/raw.json.gz", root)
    assert real == (root / "matchID=m1" / "raw.json.gz").resolve()
    assert real.is_absolute()


def test_an_absolute_path_inside_the_root_is_accepted(root: Path) -> None:
    path = root / "matchID=m1" / "raw.json.gz"
    assert resolve_inside(str(path), root) == path.resolve()


def test_dot_dot_that_stays_inside_is_accepted(root: Path) -> None:
    assert resolve_inside("matchID=m1/../matchID=m1/raw.json.gz", root) \
        == (root / "matchID=m1" / "raw.json.gz").resolve()


def test_dot_dot_escaping_the_root_is_outside_root(root: Path, tmp_path: Path) -> None:
    write(tmp_path / "secret.json", JSON)
    assert resolve_reason("../secret.json", root) == "outside_root"
    assert resolve_reason("matchID=m1/../../secret.json", root) == "outside_root"


def test_an_absolute_path_outside_the_root_is_outside_root(root: Path, tmp_path: Path) -> None:
    assert resolve_reason(write(tmp_path / "secret.json", JSON), root) == "outside_root"


def test_a_sibling_whose_name_starts_like_the_root_is_outside_root(
    root: Path, tmp_path: Path
) -> None:
    sibling = tmp_path / "root2"
    sibling.mkdir()
    assert resolve_reason(write(sibling / "f.json", JSON), root) == "outside_root"


def test_a_symlink_inside_pointing_outside_is_outside_root(root: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "secret.json", JSON)
    (root / "link.json").symlink_to(target)
    assert resolve_reason("link.json", root) == "outside_root"
    assert resolve_reason(root / "link.json", root) == "outside_root"


def test_a_symlinked_directory_pointing_outside_is_outside_root(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "f.json", JSON)
    (root / "dir").symlink_to(outside, target_is_directory=True)
    assert resolve_reason("dir/f.json", root) == "outside_root"


def test_a_symlink_inside_pointing_inside_is_accepted(root: Path) -> None:
    (root / "latest.json.gz").symlink_to(root / "matchID=m1" / "raw.json.gz")
    assert resolve_inside("latest.json.gz", root) \
        == (root / "matchID=m1" / "raw.json.gz").resolve()


def test_a_root_that_is_a_symlink_still_holds_its_files(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "root-link"
    link.symlink_to(root, target_is_directory=True)
    expected = (root / "matchID=m1" / "raw.json.gz").resolve()
    assert resolve_inside("matchID=m1/raw.json.gz", link) == expected
    assert resolve_inside(str(link / "matchID=m1" / "raw.json.gz"), link) == expected
    assert resolve_inside(str(expected), link) == expected


def test_resolving_a_directory_is_refused(root: Path) -> None:
    assert resolve_reason("matchID=m1", root) == "file_unreadable"
    assert resolve_reason("", root) == "file_unreadable"  # the root itself


def test_resolving_a_missing_file_is_file_missing(root: Path) -> None:
    assert resolve_reason("matchID=m1/nope.json.gz", root) == "file_missing"
    assert resolve_reason("no-such-dir/raw.json.gz", root) == "file_missing"


def test_a_dangling_symlink_is_file_missing(root: Path, tmp_path: Path) -> None:
    (root / "dangling").symlink_to(tmp_path / "does-not-exist")
    assert resolve_reason("dangling", root) == "file_missing"


def test_a_symlink_loop_is_file_unreadable(root: Path) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    assert resolve_reason("a", root) == "file_unreadable"


def test_resolve_then_read_round_trip(root: Path) -> None:
    path = resolve_inside("matchID=m1/raw.json.gz", root)
    assert read(path) == EVENTS
    assert os.path.commonpath([path, root.resolve()]) == str(root.resolve())


# Files still being written, unreadable files, files that grow


@pytest.mark.parametrize("cut", [gzip.compress(JSON)[:40], JSON[:25], b""])
def test_a_young_cut_off_file_is_transient_and_an_old_one_permanent(
    tmp_path: Path, cut: bytes
) -> None:
    path = write(tmp_path / "growing.json.gz", cut)
    limits = ReadLimits(MB, MB, 1000, settle_seconds=60.0)
    with pytest.raises(TransientError) as info:
        read_telemetry(path, limits)
    assert info.value.reason == "file_incomplete"
    assert "still being written" in str(info.value)
    settled = time.time() - 61
    os.utime(path, (settled, settled))
    assert reason_of(path, limits) in ("truncated", "telemetry_not_json")


def test_a_young_file_with_another_defect_stays_permanent(tmp_path: Path) -> None:
    path = write(tmp_path / "object.json", b'{"_T": "LogMatchStart"}')
    assert reason_of(path, ReadLimits(MB, MB, 1000, settle_seconds=60.0)) == "not_event_list"


def test_the_read_itself_is_capped_whatever_the_size_on_disk_says() -> None:
    # /proc files say they are empty and hold more: like a file that grew after stat().
    path = Path("/proc/self/status")
    assert os.stat(path).st_size == 0 and len(path.read_bytes()) > 200
    assert reason_of(path, ReadLimits(100, MB, 1000)) == "file_too_large"


def test_an_unreadable_file_is_transient_like_a_missing_grant(tmp_path: Path) -> None:
    path = write(tmp_path / "raw.json", JSON)
    path.chmod(0o000)
    result = run_obeying_file_modes(
        "import sys; from pathlib import Path; "
        "from pewproc.telemetry.reader import ReadLimits, read_telemetry; "
        "from pewproc.errors import TransientError\n"
        "try:\n    read_telemetry(Path(sys.argv[1]), ReadLimits(10**6, 10**6, 10))\n"
        "except TransientError as exc:\n    print(exc.reason)\n", str(path))
    assert result.stdout.strip() == "file_permission_denied", result.stderr
