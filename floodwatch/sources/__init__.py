"""Data sources: each turns a time window into normalized readings.

Adding a source means adding one module here (its settings class, `type`
included, and its adapter), one line in `REGISTRY` and one in the config's
`SourceSettings` union. Every
source has the same shape: build the request (pure), fetch (the only IO, with
the shared session, timeout and retry policy), parse and normalize (pure) into
`Reading`s, with every value it could not use accounted for as a `Rejection`.
A source's settings also say whose data it brings (`credits`, shown where people
see the data) and what in its terms an operator should know (`terms_warnings`,
printed by `check`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from floodwatch.core.geo import Geodata
from floodwatch.core.readings import Reading, Rejection
from floodwatch.core.settings import (
    MAX_INTERVAL_MINUTES,
    MAX_STALE_MINUTES,
    MAX_TIMEOUT_S,
    StrictBase,
)
from floodwatch.core.text import Credit
from floodwatch.errors import ConfigError


class SourceSettingsBase(StrictBase):
    """Keys every source has."""

    enabled: bool = True
    interval_minutes: int = Field(60, ge=1, le=MAX_INTERVAL_MINUTES)
    # The source is "stale" (and its stations blind) when its newest reading is
    # older than this; unset means it never goes stale.
    stale_after_minutes: int | None = Field(None, ge=1, le=MAX_STALE_MINUTES)
    timeout_s: float = Field(20.0, gt=0, le=MAX_TIMEOUT_S)

    def credits(self, resolve: Callable[[Path], Path]) -> list[Credit]:
        """Whose data this source brings, for the credit lines people see (none by default)."""
        return []

    def terms_warnings(self, name: str) -> list[str]:
        """What the provider's terms say about this configuration (nothing by default)."""
        return []


@dataclass
class FetchResult:
    """What one fetch produced."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # What the provider says of a station (alarm levels, record flood), per input.
    references: dict[tuple[str, str], dict] = field(default_factory=dict)


@dataclass
class SourceContext:
    """What sources share: config, geodata, one HTTP session and retry policy, environment.

    `settings` is the whole configuration (`floodwatch.config.Settings`); sources read
    only its `resolve()` (paths relative to the config file) and `http`.
    """

    settings: Any
    geodata: Geodata
    session: Any  # a requests.Session
    policy: Any  # a floodwatch.sources._http.RetryPolicy
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # False for commands that only read: sources then skip loading what only polling needs.
    polls: bool = True


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


def data_credits(settings: Any) -> list[Credit]:
    """The credits of the enabled sources, each once, in the config's order."""
    found: list[Credit] = []
    for cfg in settings.sources.values():
        if cfg.enabled:
            found += [c for c in cfg.credits(settings.resolve) if c not in found]
    return found


def terms_warnings(settings: Any) -> list[str]:
    """One line per enabled source whose provider's terms the configuration may break."""
    return [
        line
        for name, cfg in settings.sources.items()
        if cfg.enabled
        for line in cfg.terms_warnings(name)
    ]


def _factory(kind: str):
    """Import the factory of a source type on first use."""
    module_name, _, attr = REGISTRY[kind].partition(":")
    target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def make_context(settings: Any, geodata: Geodata, *, polls: bool = True) -> SourceContext:
    """A context with a fresh HTTP session and the configured retry policy."""
    import requests  # only a command that builds sources pays for it

    from floodwatch.sources._http import RetryPolicy

    policy = RetryPolicy.from_settings(settings.http)
    return SourceContext(settings, geodata, requests.Session(), policy, polls=polls)


def build_sources(
    settings: Any, geodata: Geodata, context: SourceContext | None = None, *, polls: bool = True
):
    """Instantiate every enabled source of the config (`polls=False`: for reading only)."""
    context = context or make_context(settings, geodata, polls=polls)
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
