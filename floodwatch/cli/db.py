"""`floodwatch db …`: migrations, backups, retention and rows dated in the future."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from floodwatch.cli import base as cli


@contextlib.contextmanager
def _opened(ctx):
    """(settings, store) of the config, migrated; closed after, failures as StorageError."""
    from floodwatch.config import load_settings
    from floodwatch.db.engine import database_errors
    from floodwatch.db.store import Store

    settings = load_settings(ctx.obj.config)
    store = Store(settings.storage.database_url)
    try:
        with database_errors(store.url):
            yield settings, store
    finally:
        store.close()


@click.group()
def db() -> None:
    """Database upkeep: upgrade, backup, retention, rows from the future, removed segments."""


@db.command()
@click.pass_context
def upgrade(ctx) -> None:
    """Run the schema migrations up to the newest (every start does this too).

    \b
    Example:
      floodwatch db upgrade
    """

    @cli.handles_errors
    def go():
        from floodwatch.config import load_settings
        from floodwatch.db.engine import redact
        from floodwatch.db.store import Store

        settings = load_settings(ctx.obj.config)
        Store(settings.storage.database_url).close()  # opening migrates to head
        click.echo(f"{redact(settings.storage.database_url)}: schema up to date")

    go()


@db.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx, target: Path) -> None:
    """Copy the live SQLite database to TARGET (online; the service may keep running).

    For PostgreSQL this prints how to use pg_dump instead.

    \b
    Example:
      floodwatch db backup /var/backups/floodwatch/floodwatch-$(date +%F).db
    """

    @cli.handles_errors
    def go():
        from floodwatch.config import load_settings
        from floodwatch.db.store import Store
        from floodwatch.db.upkeep import backup_sqlite
        from floodwatch.errors import StorageError

        settings = load_settings(ctx.obj.config)
        url = settings.storage.database_url
        if not url.startswith("sqlite"):
            raise StorageError(
                "the database is not a SQLite file; back PostgreSQL up with pg_dump, e.g. "
                "`pg_dump --format=custom --file=floodwatch.dump DBNAME` (docs/deploy.md)"
            )
        store = Store(url)
        try:
            size = backup_sqlite(store, target)
        finally:
            store.close()
        click.echo(f"backup written: {target} ({size / 1e6:.1f} MB)")

    go()


@db.command()
@click.option(
    "--days",
    type=click.IntRange(min=1, max=36500),
    help="Keep this many days, 1-36500 [default: storage.keep_readings_days].",
)
@click.pass_context
def retention(ctx, days: int | None) -> None:
    """Delete readings older than the retention period; events are never deleted.

    `run` does this every day at 03:30 local time.

    \b
    Example:
      floodwatch db retention --days 400
    """

    @cli.handles_errors
    def go():
        from floodwatch.db.upkeep import apply_retention
        from floodwatch.service.cycle import utcnow

        with _opened(ctx) as (settings, store):
            keep = days if days is not None else settings.storage.keep_readings_days
            done = apply_retention(store, utcnow(), keep)
        click.echo(
            f"removed {done.readings} readings and {done.source_runs} source runs "
            f"before {done.cutoff:%Y-%m-%d %H:%M}Z"
        )

    go()


@db.command()
@click.option("--delete", "delete_them", is_flag=True, help="Delete them (one transaction).")
@click.pass_context
def future(ctx, delete_them: bool) -> None:
    """List (or delete) cycles, readings and events dated ahead of the clock.

    A clock set wrong, or a reading from the future stored by an older
    version, leaves a cycle ahead of now: every later cycle is then skipped
    ("already assessed") and the service says so as an error. Check the
    server's clock first (`timedatectl`), then delete them.

    \b
    Example:
      floodwatch db future
      floodwatch db future --delete
    """

    @cli.handles_errors
    def go():
        from datetime import timedelta

        from floodwatch.db.upkeep import future_rows
        from floodwatch.service.cycle import utcnow

        with _opened(ctx) as (settings, store):
            horizon = timedelta(hours=settings.assessment.horizon_hours)
            found = future_rows(store, utcnow(), horizon, delete_them=delete_them)
        verb = "deleted" if delete_them else "found"
        click.echo(
            f"{verb}: {found.cycles} cycles, {found.readings} readings, {found.events} events "
            f"and {found.changes} changes of other events dated after "
            f"{found.cutoff:%Y-%m-%d %H:%M}Z (the clock now)"
        )
        if found.changed_events:
            ids = ", ".join(str(i) for i in found.changed_events[:20])
            click.echo(f"events changed by a future cycle (check their state): {ids}")
        if not delete_them and (found.cycles or found.readings or found.events):
            click.echo("run `floodwatch db future --delete` to remove them")

    go()


@db.command(name="prune-segments")
@click.pass_context
def prune_segments(ctx) -> None:
    """Remove the stored rows of segments that are no longer in the segment file.

    Opening the database keeps the row of a removed segment that has events,
    so that the flood log and the exports still show its name; its events are
    closed at the next cycle. This removes those rows (the events stay, named
    by the segment id only).

    \b
    Example:
      floodwatch db prune-segments
    """

    @cli.handles_errors
    def go():
        from floodwatch.db.engine import database_errors
        from floodwatch.db.store import Store
        from floodwatch.service.app import load_checked

        settings, geodata = load_checked(ctx.obj.config)
        store = Store(settings.storage.database_url)
        try:
            with database_errors(store.url):
                gone = store.sync_geodata(geodata, prune=True)
        finally:
            store.close()
        click.echo(f"removed {len(gone)} segments: {', '.join(gone) or '—'}")

    go()
