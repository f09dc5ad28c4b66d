"""`floodwatch db …`: migrations, backups and retention."""

from __future__ import annotations

from pathlib import Path

import click


def _cli():
    """The CLI helpers (imported late: cli imports this module)."""
    from floodwatch import cli

    return cli


@click.group()
def db() -> None:
    """Database upkeep: upgrade, backup, retention."""


@db.command()
@click.pass_context
def upgrade(ctx) -> None:
    """Run the schema migrations up to the newest (every start does this too).

    \b
    Example:
      floodwatch db upgrade
    """
    cli = _cli()

    @cli.handles_errors
    def go():
        from floodwatch.config import load_settings
        from floodwatch.store import Store, redact

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
    cli = _cli()

    @cli.handles_errors
    def go():
        from floodwatch.config import load_settings
        from floodwatch.errors import StorageError
        from floodwatch.maintenance import backup_sqlite
        from floodwatch.store import Store

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
    type=click.IntRange(min=1),
    help="Keep this many days [default: storage.keep_readings_days].",
)
@click.pass_context
def retention(ctx, days: int | None) -> None:
    """Delete readings older than the retention period; events are never deleted.

    `run` does this every day at 03:30 local time.

    \b
    Example:
      floodwatch db retention --days 400
    """
    cli = _cli()

    @cli.handles_errors
    def go():
        from floodwatch.config import load_settings
        from floodwatch.maintenance import apply_retention
        from floodwatch.pipeline import utcnow
        from floodwatch.store import Store

        settings = load_settings(ctx.obj.config)
        store = Store(settings.storage.database_url)
        try:
            keep = days if days is not None else settings.storage.keep_readings_days
            done = apply_retention(store, utcnow(), keep)
        finally:
            store.close()
        click.echo(
            f"removed {done.readings} readings and {done.source_runs} source runs "
            f"before {done.cutoff:%Y-%m-%d %H:%M}Z"
        )

    go()
