"""Data sources: each turns a time window into normalized readings.

Adding a source means adding one module here and one line in `REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from floodwatch.config import Settings
from floodwatch.geo import Geodata
from floodwatch.readings import Reading


class Source(Protocol):
    """What the scheduler needs from a source."""

    name: str
    interval_minutes: int

    def fetch(self, start: datetime, end: datetime, now: datetime) -> list[Reading]:
        """Readings for [start, end] as known at `now` (all times aware UTC)."""
        ...


def _harmonic(name: str, cfg, settings: Settings, geodata: Geodata) -> Source:
    from floodwatch.sources.harmonic import HarmonicTideSource

    return HarmonicTideSource.from_settings(name, cfg, settings, geodata)


REGISTRY: dict[str, Callable[..., Source]] = {
    "harmonic": _harmonic,
}


def build_sources(settings: Settings, geodata: Geodata) -> list[Source]:
    """Instantiate every enabled source of the config."""
    return [
        REGISTRY[cfg.type](name, cfg, settings, geodata)
        for name, cfg in settings.sources.items()
        if cfg.enabled
    ]
