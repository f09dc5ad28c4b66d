"""Replay: feed recorded readings through the whole pipeline in the order they became known."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import groupby

from floodwatch.core.readings import Kind, Reading, Rejection
from floodwatch.core.validate import time_problem
from floodwatch.db.engine import database_errors
from floodwatch.service.app import App
from floodwatch.service.cycle import CycleResult, utcnow

logger = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    """What a replay did."""

    cycles: int = 0
    skipped: int = 0
    readings: int = 0
    flagged: int = 0
    rejected: list[Rejection] = field(default_factory=list)  # each value validation refused
    results: list[CycleResult] = field(default_factory=list)


def replay(
    app: App,
    readings: list[Reading],
    after_cycle: Callable[[CycleResult], None] | None = None,
) -> ReplayResult:
    """Feed readings through the pipeline in the order they became known.

    Readings are validated as they would be live (doubtful values are stored
    with a flag and never count as observed flooding). The simulated clock
    steps through each distinct time at which a reading became known: its
    `time` for observations, its `issued` time for forecasts (a forecast row
    without `issued` is known from the start of the replay). Cycles at or
    before the latest already assessed are skipped, so replaying the same
    file twice adds nothing.

    Rows dated where no reading can be (before 1970, or ahead of the wall
    clock) are rejected before anything runs: the simulated clock never
    leaves the real one behind.
    """
    out = ReplayResult()
    wall = utcnow()
    horizon = timedelta(hours=app.settings.assessment.horizon_hours)
    sane = []
    for r in readings:
        problem = time_problem(r, now=wall, horizon=horizon, wall_clock=wall)
        if problem is None:
            sane.append(r)
        else:
            reason, why = problem
            out.rejected.append(Rejection(reason, f"{_describe(r)}: {why}", r.station, r.time, r))
    readings = sane
    if not readings:
        return out
    with database_errors(app.store.url):
        app.pipeline.check_clock(wall, wall)
    start = min(r.time for r in readings)
    known = [
        r if r.kind is Kind.OBSERVED or r.issued else replace(r, issued=start) for r in readings
    ]
    known.sort(key=lambda r: r.issued_at)
    for at, group in groupby(known, key=lambda r: r.issued_at):
        verdict = app.pipeline.ingest_checked(list(group), at, "replay", wall)
        out.readings += len(verdict.accepted)
        out.flagged += len(verdict.flagged)
        out.rejected += verdict.rejected
        result = app.pipeline.cycle(at)
        out.results.append(result)
        if result.skipped:
            out.skipped += 1
        else:
            out.cycles += 1
        if after_cycle:
            after_cycle(result)
    return out


def _describe(r: Reading) -> str:
    """Station, variable, kind, time and value of a reading, for a rejection line."""
    return f"{r.station} {r.variable} {r.kind} {r.time.isoformat()} value {r.value:g}"
