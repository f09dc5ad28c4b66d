"""One error hierarchy; the CLI turns these into one clear line and exit code 1."""

from __future__ import annotations


class FloodwatchError(Exception):
    """Base of every error floodwatch raises on purpose."""


class ConfigError(FloodwatchError):
    """The configuration file is wrong; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class GeodataError(ConfigError):
    """A segment or station GeoJSON file is wrong; one line per feature problem."""


class InputError(FloodwatchError):
    """A user-supplied data file (CSV, observations) cannot be used at all."""


class SourceError(FloodwatchError):
    """A data source failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False):
        self.retryable = retryable
        super().__init__(message)


class StorageError(FloodwatchError):
    """The database cannot be opened, migrated or written."""


class DeliveryError(FloodwatchError):
    """An alert could not be delivered."""
