"""`floodwatch backtest`: the warning skill of a season, as a table, JSON, XLSX and PNG."""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from floodwatch.cli import base as cli
from floodwatch.cli.base import Context, handles_errors, parse_period, pass_ctx
from floodwatch.cli.export import _output


@click.command(name="backtest")
@click.argument("csv_file", required=False, type=click.Path(path_type=Path))
@click.option("--from", "start_text", help="Start of the period scored [default: first cycle].")
@click.option(
    "--to", "end_text", help="End of the period (a date: that whole day) [default: last cycle]."
)
@click.option(
    "--window",
    type=click.FloatRange(0, 48),
    default=3.0,
    show_default=True,
    help="Timing tolerance in hours: a forecast onset this far off still counts as a hit.",
)
@click.option(
    "--tide-forecasts",
    is_flag=True,
    help="Replay with the configured offline tide predictions, issued daily, as the live "
    "service would have had them (for a file of observations only).",
)
@click.option(
    "--db", "database_url", help="Replay into this database (kept) instead of a temporary one."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--xlsx", "xlsx_path", type=click.Path(path_type=Path), help="Also write the workbook here."
)
@click.option(
    "--png", "png_path", type=click.Path(path_type=Path), help="Also write the chart here."
)
@pass_ctx
@handles_errors
def backtest_command(
    ctx: Context,
    csv_file: Path | None,
    start_text: str | None,
    end_text: str | None,
    window: float,
    tide_forecasts: bool,
    database_url: str | None,
    fmt: str,
    xlsx_path: Path | None,
    png_path: Path | None,
) -> None:
    """Score past forecasts against what was then observed: hits, misses, false alarms,
    POD, FAR, CSI and lead times per level, unit and road.

    Without CSV_FILE, scores the configured database (the service's own history).
    With it, replays the readings CSV into a temporary database first (as
    `replay` does); add --tide-forecasts when the file holds observations only.
    docs/skill.md explains each score.

    \b
    Example:
      floodwatch --config drills/skill/floodwatch.toml backtest drills/skill/season.csv
      floodwatch backtest --from 2025-09-01 --to 2025-11-30 --xlsx skill.xlsx --png skill.png
      floodwatch backtest gauges-2025.csv --tide-forecasts --format json
    """
    if csv_file is None and (tide_forecasts or database_url):
        cli.fail("--tide-forecasts and --db go with a CSV_FILE to replay (without one, "
                 "the configured database is scored)")  # fmt: skip
    _check_outputs(database_url, xlsx_path, png_path)
    with tempfile.TemporaryDirectory(prefix="floodwatch-backtest-") as scratch:
        if csv_file is not None and database_url is None:
            database_url = f"sqlite:///{Path(scratch) / 'backtest.db'}"
        app = ctx.open(
            with_sources=tide_forecasts, writes=csv_file is not None, database_url=database_url
        )
        try:
            if csv_file is not None:
                _replay(app, csv_file, tide_forecasts)
            _report(app, start_text, end_text, window, fmt, xlsx_path, png_path)
        finally:
            app.close()


def _check_outputs(database_url: str | None, *paths: Path | None) -> None:
    """Refuse a bad --db or an output folder that is not there before any work is done."""
    from floodwatch.db.engine import check_storage

    problems = []
    if database_url is not None:
        problems += [p.replace("storage.database_url", "--db") for p in check_storage(database_url)]
    problems += [
        f"cannot write {path}: no folder {path.parent}"
        for path in paths
        if path is not None and not path.parent.is_dir()
    ]
    if problems:
        cli.fail(problems)


def _replay(app, csv_file: Path, tide_forecasts: bool) -> None:
    """Replay the file (and the tide predictions) into the app's database, saying how it went."""
    from floodwatch.service.backtest import has_forecasts, replay_season
    from floodwatch.service.backtest import tide_forecasts as tides
    from floodwatch.sources.csvfile import read_csv

    parsed = read_csv(csv_file, app.geodata.stations)
    for problem in parsed.problems[:20]:
        click.echo(f"rejected: {problem}", err=True)
    readings = parsed.readings
    if not readings:
        cli.fail(f"{csv_file}: no readings to replay")
    if tide_forecasts:
        first, last = min(r.time for r in readings), max(r.time for r in readings)
        readings = readings + tides(app, first, last)
    if not has_forecasts(readings):
        click.echo(
            f"warning: {csv_file} holds no water-level forecast: every flood will count as "
            "missed (add --tide-forecasts to forecast with the offline tide tables)",
            err=True,
        )
    done = replay_season(app, readings, lambda line: click.echo(line, err=True))
    rejected = parsed.rejected + cli.echo_rejected(csv_file, parsed, done)
    click.echo(
        f"backtest: replayed {parsed.rows} rows ({rejected} rejected, {done.flagged} doubtful), "
        f"{done.cycles} cycles" + (f", {done.skipped} already assessed" if done.skipped else ""),
        err=True,
    )


def _report(app, start_text, end_text, window, fmt, xlsx_path, png_path) -> None:
    """Score, then print and write what was asked."""
    from floodwatch.exports.skill import skill_document, write_skill_xlsx
    from floodwatch.messages.skill import chart, summary
    from floodwatch.service.backtest import backtest

    settings = app.settings
    start, end = parse_period(start_text, end_text, settings.zone)
    skill = backtest(app, start, end, timedelta(hours=window))
    thresholds = settings.levels.thresholds_m
    unit_names = {u.id: u.name for u in settings.units}
    if fmt == "json":
        click.echo(json.dumps(skill_document(skill, thresholds), ensure_ascii=False, indent=2))
    else:
        click.echo(summary(skill, thresholds, unit_names, settings.zone))
    if xlsx_path is not None:
        with _output(xlsx_path) as out:
            write_skill_xlsx(
                skill, out, thresholds_m=thresholds, geodata=app.geodata,
                unit_names=unit_names, zone=settings.zone,
            )  # fmt: skip
        click.echo(f"wrote {xlsx_path}", err=True)
    if png_path is not None:
        with _output(png_path) as out:
            out.write(chart(skill, settings.zone))
        click.echo(f"wrote {png_path}", err=True)
    sys.stdout.flush()
