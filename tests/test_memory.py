"""A process that processes matches keeps the memory one match freed for the next one."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Allocate a block above glibc's largest dynamic mmap threshold (32 MiB), touch every page, free
# it, and do it again: the page faults of each round, as `resource` counts them.
PROBE = """
import resource, sys
if sys.argv[1] == "keep":
    from pewproc.processing import keep_freed_memory
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds = []
for _ in range(2):
    before = faults()
    block = bytearray(48 << 20)
    block[::4096] = b"x" * len(block[::4096])
    rounds.append(faults() - before)
    del block
print(*rounds)
"""


def faults_per_round(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True,
                         text=True).stdout
    first, second = map(int, out.split())
    return first, second


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting; elsewhere a no-op")
def test_the_next_match_reuses_the_pages_the_last_one_freed() -> None:
    pages = (48 << 20) // 4096
    first, second = faults_per_round("default")
    assert first >= pages // 2 and second >= pages // 2  # glibc gives the block back each time
    first, second = faults_per_round("keep")
    assert first >= pages // 2  # the first match pays for its pages once...
    assert second < pages // 10  # ...and the next one finds them mapped
