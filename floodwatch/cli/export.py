"""`floodwatch export …`: per-road flood statistics and the event log, to files or stdout."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from floodwatch import __version__
from floodwatch.cli import base as cli
from floodwatch.core.readings import Kind

if TYPE_CHECKING:
    from floodwatch.db.events import EventFilter
    from floodwatch.exports.tables import MaintenanceRow
    from floodwatch.service.app import App


def _when(value: str | None, zone, *, end_of_day: bool = False) -> datetime | None:
    """A CLI time; a date alone means its start, or with `end_of_day` its last instant."""
    return cli.parse_when(value, zone, end_of_day=end_of_day)


def _show_progress(flag: bool | None) -> bool:
    """--progress/--no-progress, else only when stderr is a terminal."""
    return flag if flag is not None else sys.stderr.isatty()


@contextlib.contextmanager
def _progressbar(enabled: bool, length: int, label: str):
    """A click progress bar on stderr, or a no-op updater."""
    if not enabled or length <= 0:
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


def _needs_file(cli, fmt: str, output: Path | None) -> None:
    """A workbook cannot go to a terminal: XLSX needs --output."""
    if fmt == "xlsx" and output is None:
        cli.fail("--format xlsx needs --output FILE (a workbook cannot go to a terminal)")


@contextlib.contextmanager
def _output(path: Path | None):
    """A binary stream: a temporary file renamed over `path` on success, or stdout."""
    if path is None:
        stdout = sys.stdout.buffer
        yield stdout
        stdout.flush()
        return
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as stream:
            yield stream
        os.replace(partial, path)
    except OSError as exc:
        cli.fail(f"cannot write {path}: {exc.strerror or exc}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


PROGRESS_OPTION = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
OUTPUT_OPTION = click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file [default: standard output; required for xlsx].",
)


@click.group()
def export() -> None:
    """Export per-road flood statistics and the event log (CSV, XLSX, GeoJSON, JSON).

    Times without an offset are local (the configured time zone); a date alone
    in --to means the whole of that day.
    """


@export.command()
@click.option("--from", "start", help="Period start (ISO 8601) [default: 1 January of --to].")
@click.option("--to", "end", help="Period end (ISO 8601) [default: now].")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "geojson"]),
    default="csv",
    show_default=True,
)
@OUTPUT_OPTION
@PROGRESS_OPTION
@click.pass_context
def maintenance(ctx, start, end, fmt, output, progress) -> None:
    """Flood statistics per road segment, ranked for maintenance planning.

    One row per segment: events, days with flooding, hours under water, max
    and mean peak depth, share by cause, worst and latest event, field
    reports and a ranking score (its formula is in the notes sheet). Only
    observed events count; false alarms are left out; hours are clipped to
    the period. XLSX has the events on a second sheet; GeoJSON carries the
    same properties on each segment's line, for QGIS.

    \b
    Example:
      floodwatch export maintenance --from 2024-09-01 --to 2024-12-31 \\
          --format xlsx --output ngap-2024.xlsx
      floodwatch export maintenance --from 2024-09-01 --format geojson -o ngap.geojson
      floodwatch export maintenance --from 2024-09-01 > ngap.csv
    """

    @cli.handles_errors
    def body() -> None:
        from floodwatch.exports import tables as exports

        _needs_file(cli, fmt, output)
        app = ctx.obj.open(with_sources=False, writes=False)
        try:
            zone = app.settings.zone
            period_start, period_end = _maintenance_period(start, end, zone)
            flt = exports.maintenance_events_filter(period_start, period_end)
            n_segments = len(app.geodata.segments)
            n_events = app.store.events.count(flt) if fmt == "xlsx" else 0
            show = _show_progress(progress)
            with (
                _output(output) as out,
                _progressbar(show, n_segments + n_events, "Xuất") as update,
            ):
                rows = exports.maintenance_rows(
                    app.store, period_start, period_end, app.geodata, zone=zone, progress=update
                )
                written, n_events = _write_maintenance(
                    app, fmt, rows, out, output, flt, (period_start, period_end), update
                )
        finally:
            app.close()
        if output is not None:
            extra = f", {n_events:,} events" if fmt == "xlsx" else ""
            click.echo(f"wrote {written:,} segments{extra} to {output}", err=True)

    body()


def _maintenance_period(
    start: str | None, end: str | None, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The period from --from and --to: --to defaults to now, --from to 1 January of --to."""
    period_end = _when(end, zone, end_of_day=True) or datetime.now(UTC)
    period_start = _when(start, zone) or datetime(
        period_end.astimezone(zone).year, 1, 1, tzinfo=zone
    ).astimezone(UTC)
    if period_start >= period_end:
        cli.fail("--from must be before --to")
    return period_start, period_end


def _write_maintenance(
    app: App,
    fmt: str,
    rows: Iterable[MaintenanceRow],
    out: IO[bytes],
    output: Path | None,
    flt: EventFilter,
    period: tuple[datetime, datetime],
    update: Callable[[int], None],
) -> tuple[int, int]:
    """Write the maintenance rows in `fmt`; returns (segments, events) written (events: xlsx)."""
    from floodwatch.db.engine import redact
    from floodwatch.exports import tables as exports
    from floodwatch.sources import data_credits

    zone = app.settings.zone
    if fmt == "csv":
        return exports.write_maintenance_csv(rows, out, bom=output is not None), 0
    if fmt == "geojson":
        return exports.write_maintenance_geojson(rows, app.geodata, out), 0
    period_start, period_end = period
    notes = exports.maintenance_notes(
        period_start,
        period_end,
        zone,
        f"floodwatch {__version__}, cơ sở dữ liệu {redact(app.settings.storage.database_url)}",
        datetime.now(UTC),
        data_credits(app.settings),
    )
    return exports.write_maintenance_xlsx(
        rows,
        app.store.events.stream(flt),
        out,
        notes,
        zone=zone,
        progress=update,
    )


@export.command()
@click.option("--from", "start", help="Events ongoing at or after this time (ISO 8601).")
@click.option("--to", "end", help="Events opened at or before this time (ISO 8601).")
@click.option("--segment", help="Only this segment id.")
@click.option("--unit", help="Only this unit id.")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), help="Only this kind.")
@click.option("--ward", help="Only this ward/commune (exact name).")
@click.option("--road", help="Road name containing this text.")
@click.option("--level", type=click.IntRange(1, 3), help="Reached at least this level.")
@click.option("--cause", type=click.Choice(["tide", "rain", "compound"]), help="Only this cause.")
@click.option(
    "--status",
    type=click.Choice(["forecast", "flooded", "receding", "closed"]),
    help="Only this status.",
)
@click.option("--acknowledged/--unacknowledged", default=None, help="Only (un)acknowledged events.")
@click.option(
    "--false-alarm/--not-false-alarm", default=None, help="Only events (not) marked false alarms."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "json"]),
    default="csv",
    show_default=True,
)
@OUTPUT_OPTION
@PROGRESS_OPTION
@click.pass_context
def events(ctx, start, end, fmt, output, progress, **filters) -> None:
    """The event log with the same filters as the web log, oldest first.

    CSV and XLSX have Vietnamese headers and local times (dd/mm/yyyy HH:MM);
    JSON is the `floodwatch events --format json` contract (ISO 8601 times).

    \b
    Example:
      floodwatch export events --from 2024-12-01 --to 2024-12-31 --cause tide \\
          --format xlsx --output dot-ngap-12-2024.xlsx
      floodwatch export events --ward "Phường An Xuyên" --level 2 --format json
    """

    @cli.handles_errors
    def body() -> None:
        from floodwatch.db.events import EventFilter
        from floodwatch.exports import tables as exports

        _needs_file(cli, fmt, output)
        app = ctx.obj.open(with_sources=False, writes=False)
        try:
            zone = app.settings.zone
            first, last = cli.parse_period(start, end, zone)
            flt = EventFilter(
                start=first,
                end=last,
                segment=filters["segment"],
                road=filters["road"],
                ward=filters["ward"],
                unit=filters["unit"],
                kind=filters["kind"],
                status=filters["status"],
                min_level=filters["level"],
                cause=filters["cause"],
                acknowledged=filters["acknowledged"],
                false_alarm=filters["false_alarm"],
            )
            show = _show_progress(progress)
            total = app.store.events.count(flt) if show else 0
            with _output(output) as out, _progressbar(show, total, "Xuất") as update:
                written = exports.write_events(
                    app.store, flt, fmt, out, zone, bom=output is not None, progress=update
                )
        finally:
            app.close()
        if output is not None:
            click.echo(f"wrote {written:,} events to {output}", err=True)

    body()


@export.command()
@click.option(
    "--since", help="Changes at or after this time (ISO 8601) [default: [cap] feed_days]."
)
@click.option(
    "--status",
    type=click.Choice(["Actual", "Exercise", "Test"]),
    help="CAP status [default: [cap] status; Exercise for a drill database]; use Exercise "
    "for replays.",
)
@OUTPUT_OPTION
@click.pass_context
def cap(ctx, since, status, output) -> None:
    """The event changes as CAP 1.2 alerts (one alert alone, several as an Atom feed).

    \b
    Example:
      floodwatch export cap --since 2024-12-14 --status Exercise --output drill.atom
    """

    @cli.handles_errors
    def body() -> None:

        from floodwatch.errors import FloodwatchError
        from floodwatch.exports.cap import cap_alerts, cap_status, write_cap
        from floodwatch.service.cycle import utcnow
        from floodwatch.sources import data_credits

        app = ctx.obj.open(with_sources=False, writes=False)
        try:
            settings = app.settings
            start = _when(since, settings.zone) or utcnow() - timedelta(days=settings.cap.feed_days)
            chosen = cap_status(app.store, status or settings.cap.status)
            if status == "Actual" and chosen != status:
                raise FloodwatchError(
                    "this is a drill database (floodwatch drill): its CAP status is Exercise"
                )
            alerts = cap_alerts(
                app.store,
                app.geodata,
                since=start,
                status=chosen,
                sender=settings.cap.sender,
                zone=settings.zone,
                level_names=settings.levels.names,
                credits=data_credits(settings),
            )
        finally:
            app.close()
        with _output(output) as stream:
            write_cap(stream, alerts)
        click.echo(f"{len(alerts)} CAP alerts", err=True)

    body()
