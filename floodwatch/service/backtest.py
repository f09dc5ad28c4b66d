"""Backtest: score what a season of cycles forecast against what was then observed.

Either over the configured database (the live service's own history), or over
a readings CSV replayed into a scratch database first (`replay_season`), with
the offline tide predictions added as the live service would have issued them
when the file holds observations only (`tide_forecasts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.skill import Coverage, Road, Rules, Skill, score
from floodwatch.db.engine import database_errors, redact
from floodwatch.errors import InputError
from floodwatch.service.app import App
from floodwatch.service.cycle import CycleResult
from floodwatch.service.replay import ReplayResult, replay
from floodwatch.sources.harmonic import HarmonicTideSource

logger = logging.getLogger(__name__)


def tide_forecasts(app: App, start: datetime, end: datetime) -> list[Reading]:
    """The offline tide predictions of every harmonic source, issued each UTC midnight
    from `start` to `end` for the assessment horizon, as the live service polls them."""
    horizon = timedelta(hours=app.settings.assessment.horizon_hours)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[Reading] = []
    for source in app.sources:
        if not isinstance(source, HarmonicTideSource):
            continue
        issued = day
        while issued <= end:
            out += source.fetch(issued, issued + horizon, issued).readings
            issued += timedelta(days=1)
    return out


def has_forecasts(readings: list[Reading]) -> bool:
    """Whether a file holds any forecast of the water level."""
    return any(r.kind is Kind.FORECAST and r.variable is Variable.WATER_LEVEL for r in readings)


def replay_season(
    app: App, readings: list[Reading], progress: Callable[[str], None] | None = None
) -> ReplayResult:
    """Replay readings into the app's (scratch) database, reporting progress every 10 %."""
    if not readings:
        return ReplayResult()
    first = min(r.issued_at for r in readings)
    last = max((r.issued_at for r in readings if r.kind is Kind.OBSERVED or r.issued),
               default=first)  # fmt: skip
    span = max((last - first).total_seconds(), 1.0)
    shown = [-1]

    def after(result: CycleResult) -> None:
        tenth = int(10 * (result.at - first).total_seconds() / span)
        if progress is not None and tenth > shown[0]:
            shown[0] = tenth
            progress(f"backtest: replaying, {min(tenth * 10, 100)} % ({result.at.isoformat()})")

    return replay(app, readings, after)


def backtest(
    app: App,
    start: datetime | None = None,
    end: datetime | None = None,
    window: timedelta = timedelta(hours=3),
) -> Skill:
    """Score every cycle's forecasts in [start, end) (default: every cycle stored)."""
    store = app.store
    with database_errors(store.url):
        span = store.forecasts.span()
        if span is None:
            raise InputError(
                f"no assessment cycle in {redact(store.url)}: nothing to score "
                "(give a readings CSV to replay, or run the service first)"
            )
        start = start or span[0]
        end = end or span[1] + timedelta(seconds=1)  # the last cycle included
        if end <= start:
            raise InputError(f"the period {start.isoformat()} – {end.isoformat()} is empty")
        levels = len(app.settings.levels.thresholds_m)
        max_gap = timedelta(minutes=app.settings.assessment.observed_max_age_minutes)
        reach = max_gap + window + timedelta(hours=app.settings.assessment.horizon_hours)
        issued = store.forecasts.issued(end)
        floods = store.forecasts.observed_floods(start, end, levels)
        coverage = Coverage(store.forecasts.observation_times(start - reach, end + reach), max_gap)
    roads = {
        s.id: Road(s.unit, s.tide_station, s.rain_station) for s in app.geodata.segments
    }  # fmt: skip
    logger.info(
        "backtest: %d forecast rows, %d observed floods, %s – %s",
        len(issued), len(floods), start.isoformat(), end.isoformat(),
    )  # fmt: skip
    return score(Rules(start, end, levels, window), roads, issued, floods, coverage)
