"""What every command shares: one-line errors and exit codes, the shared options, and
the time parser every command uses (`floodwatch.core.times`).

Imports nothing heavy: `floodwatch --help` must start fast.
"""

from __future__ import annotations

import functools
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from floodwatch.errors import ConfigError, FloodwatchError

if TYPE_CHECKING:
    from floodwatch.service.app import App

# Exit code of `replay` when the file had rows that were rejected (others went through).
EXIT_REJECTED = 3
NO_DATA = "không có dữ liệu"


def fail(problems: list[str] | str) -> None:
    """Print problems, one per line, and exit 1."""
    for line in [problems] if isinstance(problems, str) else problems:
        click.echo(f"error: {line}", err=True)
    sys.exit(1)


def handles_errors(func):
    """Turn floodwatch errors into clear lines and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(exc.problems)
        except FloodwatchError as exc:
            fail(str(exc))

    return wrapper


def parse_when(value: str | None, zone, *, end_of_day: bool = False) -> datetime | None:
    """A typed time (floodwatch.core.times): a date alone is that local day's start, or
    with `end_of_day` its last instant; None stays None."""
    from floodwatch.core.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, zone, end_of_day=end_of_day)
    except ValueError as exc:
        raise click.BadParameter(f"{value[:40]!r}: {exc}") from None


def parse_period(
    start: str | None, end: str | None, zone
) -> tuple[datetime | None, datetime | None]:
    """--from and --to (the end's date alone is that whole day); exit 2 when reversed."""
    first, last = parse_when(start, zone), parse_when(end, zone, end_of_day=True)
    if first is not None and last is not None and first > last:
        raise click.BadParameter(f"--from {start[:40]!r} is after --to {end[:40]!r}")
    return first, last


def echo_rejected(csv_file: Path, parsed, done) -> int:
    """Print each row a replay's validation refused, by its line in the file (`replay`,
    `drill`, `backtest`); returns how many."""
    line_of: dict[tuple, int] = {}
    for r, line in zip(parsed.readings, parsed.lines, strict=True):
        line_of.setdefault((r.station, r.variable, r.time, r.kind), line)
    for rejection in done.rejected:
        r = rejection.reading
        line = line_of.get((r.station, r.variable, r.time, r.kind)) if r else None
        where = f"{csv_file}: line {line}: " if line is not None else ""
        click.echo(f"rejected: {where}{rejection.detail}", err=True)
    return len(done.rejected)


class Context:
    """Options shared by every command."""

    def __init__(self, config: Path | None):
        self.config = config

    def open(
        self, *, with_sources: bool = True, writes: bool = True, database_url: str | None = None
    ) -> App:
        """Open the application for this config (on another database: `database_url`)."""
        from floodwatch.service.app import App

        return App.open(
            self.config, with_sources=with_sources, writes=writes, database_url=database_url
        )


pass_ctx = click.make_pass_decorator(Context)
