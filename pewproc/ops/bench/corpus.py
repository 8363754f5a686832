"""The files a bench measures: generated matches, copies of real ones, tiny matches."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pewproc.ops.bench.run import Config


@dataclass
class CorpusFile:
    label: str
    kind: str  # generated | real | tiny
    path: Path  # absolute, inside TELEMETRY_ROOT
    file_bytes: int
    events: int = 0  # counted by the parse-only child


def build_corpus(root: Path, config: Config) -> list[CorpusFile]:
    """Generated matches (seeded, like real ones in size) plus copies of the real FILES."""
    from pewproc.telemetry.synth import generate_match, match_id_for, write_match

    corpus = []
    for match_seed in range(config.seed, config.seed + config.matches):
        path = root / "generated" / f"matchID={match_id_for(match_seed)}" / "raw.json.gz"
        events = generate_match(match_seed, players=config.players, team_size=config.team_size,
                                duration_s=config.duration)
        size = write_match(path, events)
        corpus.append(CorpusFile(f"gen-{match_seed}", "generated", path, size, len(events)))
    for i, source in enumerate(config.files):
        path = root / "real" / f"{i}-{source.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        corpus.append(CorpusFile(source.name.split(".", 1)[0], "real", path,
                                 path.stat().st_size))
    return corpus


def build_tiny(root: Path, count: int, seed: int) -> list[CorpusFile]:
    """Tiny matches (2 players, 60 s, about a hundred events) for the cost of one message."""
    from pewproc.telemetry.synth import generate_match, write_match

    tiny = []
    for i in range(count):
        events = generate_match(seed + i, players=2, team_size=1, duration_s=60.0)
        path = root / "tiny" / f"tiny-{i}.json.gz"
        tiny.append(CorpusFile(f"tiny-{i}", "tiny", path, write_match(path, events),
                               len(events)))
    return tiny

