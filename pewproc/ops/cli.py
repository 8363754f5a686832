"""`pewproc`: one entry point, subcommands sharing every setting of the environment table
(see `pewproc.ops.options`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from pewproc.ops.bench import bench
from pewproc.ops.options import ALL_GROUPS, settings_options
from pewproc.ops.players import players
from pewproc.ops.reprocess import reprocess
from pewproc.ops.soak import soak
from pewproc.settings import Settings

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def main() -> None:
    """pewproc: PUBG match telemetry from RabbitMQ to PostgreSQL, in a pool of processes.

    Every option of every subcommand can also be set with the environment variable named in
    its help; the option wins.
    """


@main.command(context_settings=CONTEXT)
@click.option("--sequential", is_flag=True,
              help="Process one match at a time in the main process (PROCESSING_MODE=sequential).")
@settings_options(*ALL_GROUPS)
def worker(settings: Settings, sequential: bool) -> None:
    """Consume match.processing.{ENVIRONMENT} until SIGTERM (same as python -m
    pewproc.parallel_worker)."""
    from pewproc.ops.logs import configure_logging
    from pewproc.worker import run_worker

    if sequential:
        settings = settings.replace(processing_mode="sequential")
    configure_logging(settings)
    sys.exit(run_worker(settings))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@settings_options("database")
def db_migrate(settings: Settings) -> None:
    """Create or upgrade pewproc's schema (idempotent; safe to run from several places)."""
    from pewproc.storage.migrate import migrate

    applied = migrate(settings.conninfo, settings.postgres_schema)
    click.echo(f"schema {settings.postgres_schema}: "
               + (f"applied {', '.join(applied)}" if applied else "up to date"))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@settings_options("broker", "queues", "files")
def publish(settings: Settings, paths: tuple[Path, ...]) -> None:
    """Publish one message per telemetry file (directories are searched for *.json.gz and
    *.json), with publisher confirms, to the work queue."""
    from pewproc.broker.connection import connect
    from pewproc.broker.publisher import ConfirmingPublisher
    from pewproc.broker.topology import declare_topology
    from pewproc.message import MatchMessage

    files = sorted(_telemetry_files(paths))
    root = Path(settings.telemetry_root).resolve()
    outside = [path for path in files if not path.resolve().is_relative_to(root)]
    if outside:
        click.echo(f"warning: {len(outside)} of {len(files)} files are outside TELEMETRY_ROOT "
                   f"({root}), e.g. {outside[0]}; a worker with the same TELEMETRY_ROOT "
                   "dead-letters them", err=True)
    connection = connect(settings)
    try:
        declare_topology(connection, settings)
        publisher = ConfirmingPublisher(connection)
        with click.progressbar(files, label="publishing", file=sys.stderr) as bar:
            for path in bar:
                message = MatchMessage(
                    match_id=match_id_of(path), file_path=str(path.resolve()),
                    file_size_mb=round(path.stat().st_size / 1e6, 3),
                    environment=settings.environment, queue_target=settings.work_queue,
                )
                publisher.publish(settings.work_queue, message.to_json())
    finally:
        connection.close()
    click.echo(f"published {len(files)} messages to {settings.work_queue}")


def match_id_of(path: Path) -> str:
    """`.../matchID={id}/raw.json.gz` gives {id}; otherwise the file name without extensions."""
    for part in reversed(path.parts[:-1]):
        if part.startswith("matchID="):
            return part.removeprefix("matchID=")
    return path.name.split(".", 1)[0]


def _telemetry_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and p.name.endswith(
                (".json.gz", ".json")))
        else:
            yield path


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--write", is_flag=True, help="Also write the match to the database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--match-id", default=None, help="Match id to store under (default: from the path).")
@settings_options("processing", "database", "db_pool")
def process(settings: Settings, file: Path, write: bool, as_json: bool,
            match_id: str | None) -> None:
    """Extract one telemetry file without a broker: per-table row counts and stage timings."""
    from pewproc.processing import Processor, extract_file

    match_id = match_id or match_id_of(file)
    if write:
        settings = settings.replace(telemetry_root=str(file.resolve().parent))
        processor = Processor(settings)
        try:
            from pewproc.message import MatchMessage

            body = MatchMessage(match_id=match_id, file_path=str(file.resolve())).to_json()
            result = processor.process(body, attempt=1)
        finally:
            processor.close()
        report = dataclasses.asdict(result)
    else:
        from pewproc.errors import PermanentError

        try:
            report = extract_file(file, match_id, settings)
        except PermanentError as exc:
            raise click.ClickException(f"{exc.reason}: {exc}") from None
    if as_json:
        click.echo(json.dumps(report, default=str, indent=2))
        return
    click.echo(f"match {match_id}: {report.get('outcome', 'extracted')}, "
               f"{report['events']} events")
    for name, count in report["rows"].items():
        click.echo(f"  {name:<24}{count:>10} rows")
    for stage, seconds in report["stages"].items():
        click.echo(f"  {stage:<24}{seconds:>10.4f} s")
    if report.get("error"):
        click.echo(f"  error: {report['reason']}: {report['error']}", err=True)
        sys.exit(1)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", default=10, show_default=True, help="Matches to generate.")
@click.option("--seed", default=1, show_default=True, help="Seed of the first match.")
@click.option("--players", default=100, show_default=True, help="Players per match.")
@click.option("--team-size", default=4, show_default=True, help="Players per team.")
@click.option("--layout", type=click.Choice(["v2", "v1"]), default="v2", show_default=True,
              help="Kill events: LogPlayerKillV2 (current) or LogPlayerKill (older files).")
@click.option("--duration", default=1800.0, show_default=True, help="Match length, seconds.")
@click.option("--bots", default=0, show_default=True, help="How many of the players are bots.")
@click.option("--kind", default="official", show_default=True,
              help="Match kind in LogMatchDefinition's MatchId (official, competitive, custom...).")
def synth(directory: Path, count: int, seed: int, players: int, team_size: int, layout: str,
          duration: float, bots: int, kind: str) -> None:
    """Generate realistic matches as DIRECTORY/matchID={id}/raw.json.gz (deterministic by seed)."""
    from pewproc.telemetry.synth import generate_match, match_id_for, write_match

    directory.mkdir(parents=True, exist_ok=True)
    with click.progressbar(range(seed, seed + count), label="generating", file=sys.stderr) as bar:
        for match_seed in bar:
            events = generate_match(match_seed, players=players, team_size=team_size,
                                    kill_layout=layout, duration_s=duration, bots=bots,
                                    match_kind=kind)
            path = directory / f"matchID={match_id_for(match_seed)}" / "raw.json.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_match(path, events)
    click.echo(f"wrote {count} matches to {directory}")


@main.group()
def queue() -> None:
    """The work queue, its retry queues and its dead-letter queue."""


@queue.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@settings_options("broker", "queues", "management")
def queue_stats(settings: Settings, as_json: bool) -> None:
    """Ready, unacked and consumers of every pewproc queue (unacked needs
    RABBITMQ_MANAGEMENT_URL; AMQP does not report it)."""
    from pewproc.broker.connection import connect
    from pewproc.broker.stats import queue_stats as collect

    connection = connect(settings)
    try:
        rows = collect(connection, settings)
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'queue':<48}{'ready':>8}{'unacked':>9}{'consumers':>11}")
    for row in rows:
        cells = ["-" if row[k] is None else row[k] for k in ("ready", "unacked", "consumers")]
        click.echo(f"{row['queue']:<48}{cells[0]:>8}{cells[1]:>9}{cells[2]:>11}")
    if not settings.rabbitmq_management_url:
        click.echo("unacked: '-' because AMQP does not report it; set RABBITMQ_MANAGEMENT_URL "
                   "(e.g. http://localhost:15672) to read it from the management API", err=True)


@main.group()
def dlq() -> None:
    """Dead letters: see why matches failed, and send them back once the cause is fixed."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=None, show_default="all",
              help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@settings_options("broker", "queues")
def dlq_list(settings: Settings, limit: int | None, as_json: bool) -> None:
    """List dead letters with their reasons, oldest first (they stay in the queue).

    Dead-lettering is at least once, so a message can be there twice: copies after the first
    of one message id are marked as duplicates."""
    from pewproc.broker.connection import connect
    from pewproc.broker.deadletters import duplicates, list_dead_letters

    connection = connect(settings)
    try:
        letters = list_dead_letters(connection, settings, limit)
    finally:
        connection.close()
    flags = duplicates(letters)
    for letter, duplicate in zip(letters, flags, strict=True):
        info = {**letter.summary(), "duplicate": duplicate}
        if as_json:
            click.echo(json.dumps(info))
        else:
            click.echo(f"{info['match_id'] or '?':<40} {info['reason']:<28} "
                       f"attempts={info['attempts']} at={info['failed_at']} {info['error']}"
                       f"{' (duplicate)' if duplicate else ''}")
    if not as_json:
        click.echo(f"{len(letters)} dead letters in {settings.dead_letter_queue}, "
                   f"{sum(flags)} of them duplicates", err=True)


@dlq.command("replay")
@click.option("--reason", multiple=True, help="Only dead letters with this reason (repeatable).")
@click.option("--match-id", "match_ids", multiple=True, help="Only this match (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter.")
@click.option("--limit", type=click.IntRange(min=1), default=None, show_default="all",
              help="Replay at most this many, oldest first.")
@settings_options("broker", "queues")
def dlq_replay(settings: Settings, reason: tuple[str, ...], match_ids: tuple[str, ...],
               replay_all: bool, limit: int | None) -> None:
    """Send dead letters back to the work queue with a fresh attempt count, with confirms,
    oldest first; each message once, its duplicate copies removed."""
    from pewproc.broker.connection import connect
    from pewproc.broker.deadletters import DeadLetter, dead_letter_count, replay_dead_letters

    if not (reason or match_ids or replay_all):
        raise click.UsageError("say which dead letters: --reason, --match-id or --all")

    def wanted(letter: DeadLetter) -> bool:
        return replay_all or letter.reason in reason or letter.match_id in match_ids

    connection = connect(settings)
    try:
        with click.progressbar(length=dead_letter_count(connection, settings), label="replaying",
                               file=sys.stderr) as bar:
            count = replay_dead_letters(connection, settings, wanted,
                                        lambda letter: bar.update(1), limit)
    finally:
        connection.close()
    click.echo(f"replayed {count.replayed} to {settings.work_queue}; {count.duplicates} "
               f"duplicates removed; {count.kept} left in {settings.dead_letter_queue}")


main.add_command(bench)
main.add_command(soak)
main.add_command(reprocess)
main.add_command(players)

if __name__ == "__main__":
    main()
