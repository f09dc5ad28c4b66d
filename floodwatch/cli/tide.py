"""`floodwatch tide …`: predict from and fit constituent tables."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click

from floodwatch.cli import base as cli
from floodwatch.core.readings import Kind, Variable
from floodwatch.core.text import local_time
from floodwatch.errors import ConfigError, InputError, SourceError

if TYPE_CHECKING:
    import numpy as np

    from floodwatch.config import Settings
    from floodwatch.core.geo import Geodata
    from floodwatch.core.readings import Reading
    from floodwatch.core.tides import ConstituentTable
    from floodwatch.sources.open_meteo_marine import (
        MarinePoint,
        OpenMeteoSeaLevelSettings,
        TransferFit,
    )


def _tide_folder(settings: Settings) -> Path:
    """The constituent folder of the first harmonic source (default `tides`)."""
    from floodwatch.sources.harmonic import HarmonicSourceSettings

    for source in settings.sources.values():
        if isinstance(source, HarmonicSourceSettings):
            return settings.resolve(source.constituents)
    return settings.resolve(Path("tides"))


@click.group()
def tide() -> None:
    """Tide predictions and constituent tables."""


@tide.command()
@click.argument("station")
@click.option("--from", "start", help="Start (ISO 8601; default now). No offset = local time.")
@click.option("--to", "end", help="End (ISO 8601; default start + 2 days).")
@click.option("--step", "step_minutes", default=60, show_default=True, help="Series step, minutes.")
@click.option("--extremes-only", is_flag=True, help="Print only the high and low waters.")
@click.pass_context
def predict(ctx, station, start, end, step_minutes, extremes_only) -> None:
    """Print the predicted water level of STATION and its high and low waters.

    Levels are metres on the national datum (Hòn Dấu); times in the configured
    time zone.

    \b
    Example:
      floodwatch tide predict tp_ca_mau --from 2025-11-04 --to 2025-11-07
    """
    from floodwatch.service.app import load_checked

    try:
        settings, geodata = load_checked(ctx.obj.config)
        from floodwatch.core.tides import high_low_waters

        zone = settings.zone
        first, last = _prediction_window(start, end, step_minutes, zone)
        table = _constituent_table(settings, station)
        mark = _alarm_mark(geodata, station)
        if not extremes_only:
            _echo_levels(station, settings.timezone, zone, table, first, last, step_minutes, mark)
        click.echo(f"# {station}: high and low waters")
        for ext in high_low_waters(table, first, last):
            word = "high" if ext.kind == "high" else "low "
            click.echo(
                f"{word} {local_time(ext.time, zone)}  {ext.level_m:6.2f}{mark(ext.level_m)}"
            )
    except ConfigError as exc:
        cli.fail(exc.problems)
    except InputError as exc:
        cli.fail(str(exc))


def _prediction_window(
    start: str | None, end: str | None, step_minutes: int, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The first and last time to predict, from --from and --to; checks them and --step."""
    from floodwatch.service.cycle import utcnow

    first = cli.parse_when(start, zone) or utcnow().replace(second=0, microsecond=0)
    last = cli.parse_when(end, zone, end_of_day=True) or first + timedelta(days=2)
    if last <= first:
        raise click.BadParameter("--to must be after --from")
    if step_minutes <= 0:
        raise click.BadParameter("--step must be positive")
    return first, last


def _constituent_table(settings: Settings, station: str) -> ConstituentTable:
    """STATION's constituent table from the tide folder; InputError naming the known ones."""
    from floodwatch.sources.harmonic import load_tables

    folder = _tide_folder(settings)
    tables, problems = load_tables(folder, [station])
    if problems:
        raise ConfigError(problems)
    if station not in tables:
        known = sorted(p.stem for p in folder.glob("*.csv"))
        raise InputError(
            f"no constituent table for {station!r} in {folder} (known: {', '.join(known)})"
        )
    return tables[station]


def _alarm_mark(geodata: Geodata, station: str) -> Callable[[float], str]:
    """A function giving "  ≥ BĐ …" for a level at or above one of STATION's alarms, else ''."""
    alarms = geodata.stations[station].alarm_m if station in geodata.stations else ()
    names = ("BĐ I", "BĐ II", "BĐ III")

    def mark(level: float) -> str:
        reached = [n for n, a in zip(names, alarms, strict=False) if a and level >= a]
        return f"  ≥ {reached[-1]}" if reached else ""

    return mark


def _echo_levels(
    station: str,
    timezone: str,
    zone: tzinfo,
    table: ConstituentTable,
    first: datetime,
    last: datetime,
    step_minutes: int,
    mark: Callable[[float], str],
) -> None:
    """Print the predicted level every `step_minutes` from `first` to `last`."""
    from floodwatch.core.tides import predict_levels

    click.echo(f"# {station}: predicted level, m ({table.reference}), {timezone}")
    times = []
    t = first
    while t <= last:
        times.append(t)
        t += timedelta(minutes=step_minutes)
    for when, level in zip(times, predict_levels(table, times), strict=True):
        click.echo(f"{local_time(when, zone)}  {level:6.2f}{mark(level)}")


def _observed_levels(path: Path, station: str, geodata: Geodata) -> list[Reading]:
    """The observed water_level rows of STATION in a readings CSV, in time order."""
    from floodwatch.sources.csvfile import read_csv

    if station not in geodata.stations:
        raise InputError(f"unknown station {station!r} (not in the station GeoJSON)")
    parsed = read_csv(path, geodata.stations)
    for problem in parsed.problems:
        click.echo(f"rejected: {problem}", err=True)
    rows = sorted(
        (
            r
            for r in parsed.readings
            if r.station == station
            and r.variable == Variable.WATER_LEVEL
            and r.kind == Kind.OBSERVED
        ),
        key=lambda r: r.time,
    )
    if not rows:
        raise InputError(f"{path}: no water_level rows for {station!r}")
    return rows


@tide.command()
@click.argument("station")
@click.argument("observations", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Write the table here (CSV).")
@click.pass_context
def fit(ctx, station, observations, out) -> None:
    """Fit a constituent table for STATION from observed levels (utide).

    OBSERVATIONS is a readings CSV (time,station,variable,value); its
    observed water_level rows of STATION are used, ideally hourly over a month or more.

    \b
    Example:
      floodwatch tide fit tp_ca_mau obs_2024.csv --out config/tides/tp_ca_mau.csv
    """
    import numpy as np

    from floodwatch.core.tides import fit_constituents, write_constituents
    from floodwatch.service.app import load_checked

    try:
        settings, geodata = load_checked(ctx.obj.config)
        rows = _observed_levels(observations, station, geodata)
        table, rms_m = fit_constituents(
            station,
            [r.time for r in rows],
            np.array([r.value for r in rows]),
            geodata.stations[station].lat,
        )
    except ConfigError as exc:
        cli.fail(exc.problems)
    except InputError as exc:
        cli.fail(str(exc))
    click.echo(f"# fitted {len(table.names)} constituents from {len(rows)} levels; "
               f"RMS residual {rms_m:.3f} m", err=True)  # fmt: skip
    if out:
        with Path(out).open("w", encoding="utf-8") as handle:
            write_constituents(table, handle)
        click.echo(f"wrote {out}", err=True)
    else:
        write_constituents(table, sys.stdout)


def _marine_point(
    settings: Settings, station: str
) -> tuple[str, OpenMeteoSeaLevelSettings, MarinePoint] | None:
    """The first open_meteo_sea_level source with a point for STATION: (name, settings, point)."""
    from floodwatch.sources.open_meteo_marine import OpenMeteoSeaLevelSettings

    for name, source in settings.sources.items():
        if isinstance(source, OpenMeteoSeaLevelSettings) and station in source.stations:
            return name, source, source.stations[station]
    return None


def _model_from_csv(path: Path) -> tuple[list, np.ndarray]:
    """Times and raw sea levels of a readings CSV (its station column is ignored)."""
    import numpy as np

    from floodwatch.sources.csvfile import read_csv

    parsed = read_csv(path)
    for problem in parsed.problems:
        click.echo(f"rejected: {problem}", err=True)
    rows = sorted(parsed.readings, key=lambda r: r.time)
    if not rows:
        raise InputError(f"{path}: no usable rows")
    repeated = sum(1 for a, b in zip(rows, rows[1:], strict=False) if a.time == b.time)
    if repeated:
        raise InputError(f"{path}: {repeated} rows repeat a time; give one model series")
    return [r.time for r in rows], np.array([r.value for r in rows])


@tide.command()
@click.argument("station")
@click.argument("observations", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model_csv",
    type=click.Path(path_type=Path),
    help="Modelled sea level: a readings CSV whose value is Open-Meteo's sea_level_height_msl "
    "(m); its station column is ignored. Default: fetch it for the observed period from the "
    "open_meteo_sea_level source that has a point for STATION.",
)
@click.pass_context
def calibrate(ctx, station, observations, model_csv) -> None:
    """Fit STATION's sea-level transfer (offset, gain, lag) from observed levels.

    OBSERVATIONS is a readings CSV (time,station,variable,value); its observed
    water_level rows of STATION (m, national datum) are compared with the
    modelled sea level, shifted by every lag from -6 h to +6 h in 10 min steps:
    level = offset_m + gain x sea_level(t - lag). Prints the best fit, its RMS
    error and a TOML table to paste into the config. Needs 24 or more
    overlapping hours; a few weeks covering spring and neap tides fit best.

    \b
    Example:
      floodwatch tide calibrate tp_ca_mau obs_dec2024.csv --model sea_level_dec2024.csv
      floodwatch tide calibrate ganh_hao obs_dec2024.csv
    """
    from floodwatch.service.app import load_checked

    try:
        settings, geodata = load_checked(ctx.obj.config)
        rows = _observed_levels(observations, station, geodata)
        from floodwatch.sources.open_meteo_marine import fit_transfer

        found = _marine_point(settings, station)
        model_times, model_levels = _model_series(settings, station, rows, model_csv, found)
        result = fit_transfer(
            [r.time for r in rows], [r.value for r in rows], model_times, model_levels
        )
    except ConfigError as exc:
        cli.fail(exc.problems)
    except (InputError, SourceError) as exc:
        cli.fail(str(exc))
    _echo_transfer(station, len(rows), len(model_times), result, found, geodata)


def _model_series(
    settings: Settings,
    station: str,
    rows: list[Reading],
    model_csv: Path | None,
    found: tuple[str, OpenMeteoSeaLevelSettings, MarinePoint] | None,
) -> tuple[list, np.ndarray]:
    """The modelled sea level over the observed period: from --model, else fetched."""
    if model_csv:
        return _model_from_csv(model_csv)
    if found is None:
        raise InputError(
            f"no open_meteo_sea_level source has a point for {station!r}; "
            "add one to the config or pass --model MODEL.csv"
        )
    import requests

    from floodwatch.sources._http import RetryPolicy
    from floodwatch.sources.open_meteo_marine import fetch_model_series

    name, cfg, point = found
    apikey = os.environ.get(cfg.apikey_env, "") if cfg.apikey_env else None
    if cfg.apikey_env and not apikey:
        raise InputError(
            f"sources.{name}.apikey_env: environment variable {cfg.apikey_env} is not set"
        )
    return fetch_model_series(
        cfg, point, rows[0].time, rows[-1].time, session=requests.Session(),
        policy=RetryPolicy.from_settings(settings.http), apikey=apikey or None, name=name,
    )  # fmt: skip


def _echo_transfer(
    station: str,
    observed: int,
    modelled: int,
    result: TransferFit,
    found: tuple[str, OpenMeteoSeaLevelSettings, MarinePoint] | None,
    geodata: Geodata,
) -> None:
    """Print the fitted transfer and the config table to paste (warning on stderr first)."""
    if abs(result.lag_minutes) >= 360:
        click.echo(f"warning: the best lag ({result.lag_minutes} min) is at the edge of the "
                   "searched range; check the point and the observations", err=True)  # fmt: skip
    click.echo(f"# {station}: {observed} observed levels, {modelled} model values")
    click.echo(f"offset_m     {result.offset_m:.3f}")
    click.echo(f"gain         {result.gain:.3f}")
    click.echo(f"lag_minutes  {result.lag_minutes}")
    click.echo(f"rms_m        {result.rms_m:.3f}")
    click.echo(f"n            {result.n}")
    if found is None:
        name = "sea_level"
        lat, lon = geodata.stations[station].lat, geodata.stations[station].lon
        where = "  # the sea point the model series came from"
    else:
        name, lat, lon, where = found[0], found[2].lat, found[2].lon, ""
    click.echo("\n# paste into the config file:")
    click.echo(f"[sources.{name}.stations.{station}]")
    click.echo(f"lat = {lat}{where}")
    click.echo(f"lon = {lon}{where}")
    click.echo(f"offset_m = {result.offset_m:.3f}")
    click.echo(f"gain = {result.gain:.3f}")
    click.echo(f"lag_minutes = {result.lag_minutes}")


@tide.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["ticon", "noaa", "neaps"]),
    help="Input format; default: detected (JSON with HarmonicConstituents: noaa, with "
    "harmonic_constituents: neaps, text: ticon).",
)  # fmt: skip
@click.option("--station", help="Station id: the TICON record_source to take (files with "
              "several stations), or the NOAA station id for the header.")  # fmt: skip
@click.option("--datum", help="Give levels above this source datum (e.g. LAT, MLLW): "
              "Z0 = MSL - DATUM from the source's datums.")  # fmt: skip
@click.option("--z0", "z0_m", type=float, help="Mean level above the national datum, metres "
              "(default 0: levels relative to mean sea level).")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), help="Write the table here (CSV).")
def import_(file, fmt, station, datum, z0_m, out) -> None:
    """Import a published constituent table (TICON-4, NOAA harcon.json, neaps JSON).

    Writes our constituent CSV with the source, licence, attribution and the
    source's datums in its header. Names are mapped across spellings (EP2 =
    EPS2, LAM2 = LAMBDA2, RHO = RHO1, SGM = SIGMA1); a constituent the tide
    engine cannot predict is refused by name, never dropped. Bad input: one
    line naming the file and the field, exit code 2.

    \b
    Example:
      floodwatch tide import vung_tau.json --datum LAT --out config/tides/vung_tau.csv
      floodwatch tide import TICON-4.txt --station vung_tau-383-vnm-uhslc_fd --out vt.csv
    """
    from floodwatch.core.tide_import import (
        level_reference,
        mean_level,
        read_published,
        write_published,
    )

    if datum is not None and z0_m is not None:
        _refuse("--datum and --z0: give one of them, not both")
    try:
        table = read_published(file, fmt, station)
        level, how = mean_level(table, file, datum, z0_m)
        reference = level_reference(datum, z0_m)
    except InputError as exc:
        _refuse(str(exc))
    origin = f"{Path(file).name} ({fmt or 'format detected'})"
    if out:
        with Path(out).open("w", encoding="utf-8") as handle:
            write_published(table, origin, level, how, handle, reference)
        click.echo(f"wrote {out}: {len(table.constituents)} constituents", err=True)
    else:
        write_published(table, origin, level, how, sys.stdout, reference)


def _refuse(message: str) -> None:
    """Print one error line and exit 2 (bad input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
