"""Offline tide prediction from per-station harmonic constituent tables (the default)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.text import Credit
from floodwatch.errors import ConfigError, InputError
from floodwatch.sources import FetchResult, SourceContext, SourceSettingsBase

if TYPE_CHECKING:
    from floodwatch.core.tides import ConstituentTable

logger = logging.getLogger(__name__)


class HarmonicSourceSettings(SourceSettingsBase):
    """Offline tide prediction from per-station constituent tables."""

    type: Literal["harmonic"]
    # Folder with one `<station_id>.csv` constituent table per tide station.
    constituents: Path = Path("tides")

    def credits(self, resolve) -> list[Credit]:
        """The licences and attributions the tables' headers name (`tide import` writes
        them), each once; the shipped sample tables name none."""
        from floodwatch.core.tide_import import header_credit

        found: list[Credit] = []
        folder = resolve(self.constituents)
        for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
            credit = header_credit(path)
            if credit is not None and credit not in found:
                found.append(credit)
        return found


STEP = timedelta(minutes=15)


def load_tables(
    folder: Path, station_ids: list[str]
) -> tuple[dict[str, ConstituentTable], list[str]]:
    """Constituent tables for the stations that have a `<id>.csv`; problems of broken ones."""
    from floodwatch.core.tides import load_constituents  # pyTMD: only when tides are read

    tables: dict[str, ConstituentTable] = {}
    problems: list[str] = []
    for station in station_ids:
        path = folder / f"{station}.csv"
        if not path.is_file():
            continue
        try:
            tables[station] = load_constituents(path, station)
        except InputError as exc:
            problems.append(str(exc))
    return tables, problems


@dataclass
class HarmonicTideSource:
    """Predicted water levels, every 15 minutes, issued at the start of the UTC day.

    Predictions are deterministic, so re-polling on the same day rewrites the
    same rows instead of piling up new issues. The tables are read when first
    needed (at once for commands that poll, so a broken table stops them
    before they start; commands that only read never pay for pyTMD).
    """

    name: str
    interval_minutes: int
    folder: Path
    stations: tuple[str, ...]  # the water-level stations that have a table file
    stale_after_minutes: int | None = None  # offline and deterministic: unset by default
    _tables: dict[str, ConstituentTable] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(
        cls, name: str, cfg: HarmonicSourceSettings, context: SourceContext
    ) -> HarmonicTideSource:
        """The source of every water-level station with a table; ConfigError on broken ones."""
        settings, geodata = context.settings, context.geodata
        folder = settings.resolve(cfg.constituents)
        wanted = [s.id for s in geodata.stations.values() if Variable.WATER_LEVEL in s.measures]
        present = tuple(station for station in wanted if (folder / f"{station}.csv").is_file())
        for station in sorted(set(wanted) - set(present)):
            logger.warning("%s: no constituent table %s; no predictions for %s",
                           name, folder / f"{station}.csv", station)  # fmt: skip
        source = cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            folder=folder,
            stations=present,
            stale_after_minutes=cfg.stale_after_minutes,
        )
        if context.polls:
            source.tables  # noqa: B018 (load now: a broken table is a config error)
        return source

    @property
    def tables(self) -> dict[str, ConstituentTable]:
        """The constituent tables, read on first use; ConfigError naming every broken one."""
        if self._tables is None:
            tables, problems = load_tables(self.folder, list(self.stations))
            if problems:
                raise ConfigError(problems)
            self._tables = tables
        return self._tables

    def provides(self) -> set[tuple[str, str]]:
        """Water level at every station with a table."""
        return {(station, Variable.WATER_LEVEL) for station in self.stations}

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """Predicted levels for every station with a table, [start, end] on 15-minute steps."""
        issued = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = start.astimezone(UTC).replace(second=0, microsecond=0)
        first -= timedelta(minutes=first.minute % 15)
        times = []
        t = first
        while t <= end:
            times.append(t)
            t += STEP
        from floodwatch.core.tides import predict_levels

        readings = []
        for station, table in self.tables.items():
            levels = predict_levels(table, times)
            readings.extend(
                Reading(
                    station,
                    Variable.WATER_LEVEL,
                    when,
                    round(float(level), 4),
                    Kind.FORECAST,
                    issued,
                )  # fmt: skip
                for when, level in zip(times, levels, strict=True)
            )
        logger.info("%s: %d stations, %d rows", self.name, len(self.tables), len(readings))
        return FetchResult(readings)
