"""Data sources: each turns a time window into normalized readings.

Adding a source means adding one module here and one line in `REGISTRY`. Every
source has the same shape: build the request (pure), fetch (the only IO, with
the shared session, timeout and retry policy), parse and normalize (pure) into
`Reading`s, with every value it could not use accounted for as a `Rejection`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import requests

from floodwatch.config import Settings
from floodwatch.errors import ConfigError
from floodwatch.geo import Geodata
from floodwatch.http import RetryPolicy
from floodwatch.readings import Reading, Rejection


@dataclass
class FetchResult:
    """What one fetch produced."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # What the provider says of a station (alarm levels, record flood), per input.
    references: dict[tuple[str, str], dict] = field(default_factory=dict)


@dataclass
class SourceContext:
    """What sources share: config, geodata, one HTTP session and retry policy, environment."""

    settings: Settings
    geodata: Geodata
    session: requests.Session
    policy: RetryPolicy
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


class Source(Protocol):
    """What the scheduler needs from a source."""

    name: str
    interval_minutes: int
    stale_after_minutes: int | None

    def provides(self) -> set[tuple[str, str]]:
        """The (station, variable) pairs this source delivers."""
        ...

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """Readings for [start, end] as known at `now` (all times aware UTC)."""
        ...


# type -> "module:factory"; each factory is `(name, settings_of_source, SourceContext)`.
REGISTRY: dict[str, str] = {
    "harmonic": "floodwatch.sources.harmonic:HarmonicTideSource.from_settings",
    "open_meteo_rain": "floodwatch.sources.open_meteo:OpenMeteoRainSource.from_settings",
    "open_meteo_sea_level": "floodwatch.sources.open_meteo_marine:SeaLevelSource.from_settings",
    "http_json": "floodwatch.sources.http_json:HttpJsonSource.from_settings",
    "drop_folder": "floodwatch.sources.drop_folder:DropFolderSource.from_settings",
}


def _factory(kind: str):
    """Import the factory of a source type on first use."""
    module_name, _, attr = REGISTRY[kind].partition(":")
    target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def make_context(settings: Settings, geodata: Geodata) -> SourceContext:
    """A context with a fresh HTTP session and the configured retry policy."""
    return SourceContext(
        settings, geodata, requests.Session(), RetryPolicy.from_settings(settings.http)
    )


def build_sources(settings: Settings, geodata: Geodata, context: SourceContext | None = None):
    """Instantiate every enabled source of the config."""
    context = context or make_context(settings, geodata)
    sources, problems = [], []
    for name, cfg in settings.sources.items():
        if not cfg.enabled:
            continue
        try:
            sources.append(_factory(cfg.type)(name, cfg, context))
        except ConfigError as exc:  # keep going: every source's problems at once
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return sources
