"""Source and input health (pure): ok, degraded, failing, stale; which inputs are blind.

An *input* is one (station, variable) as one source delivers it: the rain at
Giá Rai from Open-Meteo, the level at TP Cà Mau from the provincial gauges.
Each has its own last good time, so one dead gauge of a multi-station source
is seen on its own. An input is `stale` when its newest data is older than
its source's `stale_after_minutes` (counted from the first poll while nothing
has arrived).

A source is
- `stale` when every input it has is stale (a source that has no known inputs,
  such as an empty drop folder, when its own newest data is that old);
- `failing` after `FAILING_AFTER` polls in a row failed;
- `degraded` after a failed poll, when its last poll rejected or flagged more
  than a tenth of what it delivered, or when some of its inputs are stale;
- `ok` otherwise.

A (station, variable) is blind when every source that provides it is stale for
it: the segments that need it are then reported as blind ("không có dữ liệu")
instead of being silently treated as dry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

FAILING_AFTER = 3
OK, DEGRADED, FAILING, STALE = "ok", "degraded", "failing", "stale"


@dataclass(frozen=True)
class InputHealth:
    """What the store knows of one input as one source delivers it."""

    source: str
    station: str
    variable: str
    first_seen_at: datetime
    newest_at: datetime | None = None
    stale_since: datetime | None = None  # set while its alarm is out

    @property
    def pair(self) -> tuple[str, str]:
        """(station, variable)."""
        return (self.station, self.variable)


def input_stale(health: InputHealth, now: datetime, stale_after_minutes: int | None) -> bool:
    """Whether an input has delivered nothing new for longer than its source allows."""
    if stale_after_minutes is None:
        return False
    reference = health.newest_at or health.first_seen_at
    return now - reference > timedelta(minutes=stale_after_minutes)


@dataclass(frozen=True)
class InputStatus:
    """One input of one source at one moment."""

    health: InputHealth
    stale: bool
    reference: dict | None = None

    @property
    def pair(self) -> tuple[str, str]:
        """(station, variable)."""
        return self.health.pair


@dataclass(frozen=True)
class HealthView:
    """Source and input health at one moment (computed per call, never shared)."""

    at: datetime
    statuses: dict[str, str] = field(default_factory=dict)  # polled sources only
    inputs: list[InputStatus] = field(default_factory=list)
    # (station, variable) that no fresh source delivers: its roads are blind.
    blind: frozenset[tuple[str, str]] = frozenset()

    @property
    def quiet(self) -> frozenset[tuple[str, str]]:
        """(station, variable) that at least one of its sources has stopped delivering."""
        return frozenset(i.pair for i in self.inputs if i.stale)

    def stale_inputs(self) -> list[InputStatus]:
        """The inputs that have gone quiet, oldest silence first."""
        return sorted(
            (i for i in self.inputs if i.stale),
            key=lambda i: (i.health.newest_at or i.health.first_seen_at, i.health.source),
        )


@dataclass(frozen=True)
class Health:
    """What the store knows of one source's polls."""

    first_seen_at: datetime
    consecutive_failures: int = 0
    newest_at: datetime | None = None
    last_delivered: int = 0
    last_doubted: int = 0  # rejected + flagged in the last poll


def status(
    health: Health,
    now: datetime,
    stale_after_minutes: int | None,
    inputs_stale: Sequence[bool] = (),
) -> str:
    """The health status of a source at `now`, given whether each of its inputs is stale."""
    if inputs_stale:
        if all(inputs_stale):
            return STALE
    elif stale_after_minutes is not None:
        reference = health.newest_at or health.first_seen_at
        if now - reference > timedelta(minutes=stale_after_minutes):
            return STALE
    if health.consecutive_failures >= FAILING_AFTER:
        return FAILING
    total = health.last_delivered + health.last_doubted
    if health.consecutive_failures or (total and health.last_doubted * 10 > total):
        return DEGRADED
    if any(inputs_stale):
        return DEGRADED
    return OK


def blind_inputs(
    provides: Mapping[str, set[tuple[str, str]]],
    statuses: Mapping[str, str],
    stale_inputs: set[tuple[str, str, str]] = frozenset(),  # type: ignore[assignment]
) -> set[tuple[str, str]]:
    """(station, variable) pairs whose every providing source is stale for them.

    A source is stale for a pair when the source as a whole is stale or when
    (source, station, variable) is in `stale_inputs`.
    """
    providers: dict[tuple[str, str], list[str]] = {}
    for source, pairs in provides.items():
        for pair in pairs:
            providers.setdefault(pair, []).append(source)
    return {
        pair
        for pair, sources in providers.items()
        if all(
            statuses.get(source) == STALE or (source, *pair) in stale_inputs for source in sources
        )
    }
