"""Failpoints: named places in a message's life where a test can make pewproc crash on purpose.

Modelled on etcd's gofail and TiKV's fail-rs. Every failpoint is inert unless the environment
variable `PEWPROC_FAILPOINTS` names it, so production pays one dict lookup on an empty dict:

    PEWPROC_FAILPOINTS="after_commit_before_ack=kill,inside_migration=1*kill"

Actions:

- `kill`: SIGKILL the process that reaches the failpoint (a pool child kills itself, the main
  process kills itself and so the whole worker), exactly as the OOM killer or a power cut would;
- `panic`: raise `FailpointPanic`, an unexpected exception, where the code stands;
- `sleep(SECONDS)`: wait there, to widen a race.

`N*action` fires on the first N hits only. Pool children are separate processes, and a killed
child is replaced by a new one reading the same environment, so hits are counted across
processes with marker files in `PEWPROC_FAILPOINTS_DIR` (required for `N*`): whoever creates
`name.i` first owns hit i.

The failpoints, where they stand, and what a crash there must lead to, are listed in
docs/reliability.md ("Crash windows").
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "PEWPROC_FAILPOINTS"
DIR_ENV = "PEWPROC_FAILPOINTS_DIR"

# Every failpoint placed in the code, so that a misspelt name in the environment is an error.
AFTER_COPY_BEFORE_COMMIT = "after_copy_before_commit"
AFTER_COMMIT_BEFORE_ACK = "after_commit_before_ack"
AFTER_RETRY_COPY_BEFORE_ACK = "after_retry_copy_before_ack"
AFTER_DEAD_LETTER_BEFORE_ACK = "after_dead_letter_before_ack"
INSIDE_MIGRATION = "inside_migration"
NAMES = frozenset({AFTER_COPY_BEFORE_COMMIT, AFTER_COMMIT_BEFORE_ACK, AFTER_RETRY_COPY_BEFORE_ACK,
                   AFTER_DEAD_LETTER_BEFORE_ACK, INSIDE_MIGRATION})

_ACTION = re.compile(r"^(?:(?P<times>\d+)\*)?(?P<verb>kill|panic|sleep\((?P<seconds>[0-9.]+)\))$")


class FailpointPanic(RuntimeError):
    """Raised by a failpoint whose action is `panic`: stands for a bug at that spot."""


@dataclass(frozen=True)
class Action:
    verb: str  # kill | panic | sleep
    times: int | None = None  # fire on the first `times` hits only; None: always
    seconds: float = 0.0


def parse(spec: str) -> dict[str, Action]:
    """`name=action,...` into actions by name; ValueError naming what is wrong."""
    actions: dict[str, Action] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, text = item.partition("=")
        name = name.strip()
        match = _ACTION.match(text.strip())
        if name not in NAMES:
            raise ValueError(f"{ENV}: unknown failpoint {name!r}; known: "
                             f"{', '.join(sorted(NAMES))}")
        if match is None:
            raise ValueError(f"{ENV}: {item!r} needs an action: kill, panic, sleep(SECONDS), "
                             "optionally N*action")
        verb = match["verb"].split("(")[0]
        times = int(match["times"]) if match["times"] else None
        actions[name] = Action(verb, times, float(match["seconds"] or 0))
    return actions


_active: dict[str, Action] = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Reached failpoint `name`: do what the environment says, if anything."""
    action = _active.get(name)
    if action is None or not _claim(name, action):
        return
    log.warning("failpoint %s: %s", name, action.verb)
    if action.verb == "kill":
        for handler in logging.getLogger().handlers:  # the line above must reach the log
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.verb == "panic":
        raise FailpointPanic(f"failpoint {name}")
    else:
        time.sleep(action.seconds)


def _claim(name: str, action: Action) -> bool:
    """Whether this hit fires: always, or while fewer than `times` hits have fired anywhere."""
    if action.times is None:
        return True
    folder = os.environ.get(DIR_ENV)
    if not folder:
        raise RuntimeError(f"{ENV}: {name}={action.times}*{action.verb} needs {DIR_ENV}")
    for n in range(action.times):
        try:
            os.close(os.open(Path(folder) / f"{name}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            continue
    return False
