"""The one reading type every source produces, and the names of its fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Variable(StrEnum):
    """What a reading measures; units are fixed per variable."""

    WATER_LEVEL = "water_level"  # metres on the national height datum (Hòn Dấu)
    RAINFALL = "rainfall"  # millimetres fallen in the hour ending at `time`


class Kind(StrEnum):
    """Whether a value was measured or predicted."""

    OBSERVED = "observed"
    FORECAST = "forecast"


# Canonical reading field names, in CSV column order (DESIGN.md contract).
FIELDS = ("time", "station", "variable", "value", "kind", "issued")


@dataclass(frozen=True, slots=True)
class Reading:
    """One normalized value at one station; times are timezone-aware UTC.

    `issued` is when the value became known: the observation time itself for
    observed values, the issue time of the forecast for forecasts.
    """

    station: str
    variable: Variable
    time: datetime
    value: float
    kind: Kind = Kind.OBSERVED
    issued: datetime | None = None
    # Why validation doubts this value (soft_limit, spike, flat_line); None = fine.
    # Doubtful values are stored and shown, but never count as observed flooding.
    flag: str | None = None

    @property
    def issued_at(self) -> datetime:
        """The issue time, defaulting to the reading time for observations."""
        return self.issued if self.issued is not None else self.time


@dataclass(frozen=True)
class Rejection:
    """A value a source or the validation could not use, and why.

    `reason` is a short code (missing, malformed, unknown_station,
    wrong_variable, hard_limit, future, duplicate, unit_mismatch, fetch_failed);
    `detail` says it for a person.
    """

    reason: str
    detail: str
    station: str | None = None
    time: datetime | None = None
    # The refused reading itself, when there was one (to find its line in a file).
    reading: Reading | None = None
