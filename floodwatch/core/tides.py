"""Harmonic tide prediction, high/low water extraction and constituent fitting (pure)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np

from floodwatch.core.harmonics import canonical, known, node_terms
from floodwatch.errors import InputError

logger = logging.getLogger(__name__)

HEADER = ("constituent", "amplitude_m", "phase_deg")
MEAN_LEVEL = "Z0"
# utide's Sa and S1 arguments carry the solar perihelion p' (coefficient below) and
# ours (pyTMD's) do not, so their Greenwich phases differ by that multiple of p'.
UTIDE_PERIHELION_TERM = {"SA": -1.0, "S1": 1.0}
UTIDE_OPTIONS = dict(method="ols", conf_int="none", trend=False, nodal=True, verbose=False)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


NATIONAL_DATUM = "national datum (Hòn Dấu)"
REFERENCE_COMMENT = "# Levels on:"


@dataclass(frozen=True)
class ConstituentTable:
    """Harmonic constituents of one station; levels in metres on the national datum."""

    station: str
    z0_m: float  # mean water level above the national datum (Hòn Dấu), metres
    names: tuple[str, ...]  # canonical constituent names (core.harmonics), e.g. ("M2", "K1")
    amplitudes_m: np.ndarray
    phases_deg: np.ndarray  # Greenwich phase lag, degrees
    # What the levels are measured from: a `# Levels on: …` comment of the file (an
    # imported table without --z0 is on its own mean sea level), else the national datum.
    reference: str = NATIONAL_DATUM


@dataclass(frozen=True)
class Extreme:
    """One high or low water."""

    time: datetime  # tz-aware UTC
    level_m: float
    kind: str  # "high" or "low"


def _parse_number(text: str, what: str) -> float:
    """Parse a finite float or raise ValueError naming the column."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def _read_lines(path: Path) -> list[str]:
    """The lines of a constituent CSV, or InputError when the file cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
        raise InputError(f"{path}: line 0: cannot read constituent table: {reason}") from None


def _parse_row(
    fields: list[str], has_z0: bool, rows: dict[str, tuple[float, float]]
) -> tuple[str, float, float]:
    """(name, amplitude_m, phase_deg) of one data row, or ValueError saying what is wrong."""
    if len(fields) != 3:
        raise ValueError(f"expected 3 columns, found {len(fields)}")
    name = canonical(fields[0])
    amplitude_m = _parse_number(fields[1], "amplitude_m")
    phase_deg = _parse_number(fields[2], "phase_deg")
    if name == MEAN_LEVEL:
        if has_z0:
            raise ValueError("duplicate constituent Z0")
        return name, amplitude_m, phase_deg
    if not known(name):
        raise ValueError(f"constituent {fields[0]!r} is unknown to the tide engine (pyTMD)")
    if name in rows:
        raise ValueError(f"duplicate constituent {name}")
    if amplitude_m < 0:
        raise ValueError(f"amplitude_m {fields[1]} is negative")
    return name, amplitude_m, phase_deg


def load_constituents(path: Path, station: str) -> ConstituentTable:
    """Read a constituent CSV (`constituent,amplitude_m,phase_deg`, with a Z0 row)."""
    path = Path(path)
    lines = _read_lines(path)
    header_line = 0
    z0_m: float | None = None
    rows: dict[str, tuple[float, float]] = {}
    reference = NATIONAL_DATUM
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if line.startswith(REFERENCE_COMMENT):
            reference = line.removeprefix(REFERENCE_COMMENT).strip() or reference
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if not header_line:
            if tuple(f.lower() for f in fields) != HEADER:
                raise InputError(f"{path}: line {n}: expected header {','.join(HEADER)!r}")
            header_line = n
            continue
        try:
            name, amplitude_m, phase_deg = _parse_row(fields, z0_m is not None, rows)
        except ValueError as exc:
            raise InputError(f"{path}: line {n}: {exc}") from None
        if name == MEAN_LEVEL:
            z0_m = amplitude_m
            continue
        rows[name] = (amplitude_m, phase_deg % 360.0)
    if not header_line:
        last = max(len(lines), 1)
        raise InputError(f"{path}: line {last}: missing header {','.join(HEADER)!r}")
    if z0_m is None:
        raise InputError(f"{path}: line {header_line}: no Z0 row (mean level above datum)")
    logger.debug("tides: %s: %d constituents from %s", station, len(rows), path)
    return ConstituentTable(
        station=station,
        z0_m=z0_m,
        names=tuple(rows),
        amplitudes_m=np.array([a for a, _ in rows.values()], dtype=float),
        phases_deg=np.array([p for _, p in rows.values()], dtype=float),
        reference=reference,
    )


def write_constituents(table: ConstituentTable, out: TextIO) -> None:
    """Write a table in the CSV format `load_constituents` reads."""
    out.write(
        f"# {table.station}: levels in metres on the national datum (Hòn Dấu), "
        "phases are Greenwich phase lags in degrees\n"
    )
    out.write(",".join(HEADER) + "\n")
    out.write(f"{MEAN_LEVEL},{table.z0_m:.4f},0\n")
    for name, amplitude_m, phase_deg in zip(
        table.names, table.amplitudes_m, table.phases_deg, strict=True
    ):
        out.write(f"{name},{amplitude_m:.4f},{phase_deg % 360.0:.2f}\n")


def _epoch_seconds(times: Sequence[datetime]) -> np.ndarray:
    """Seconds since 1970-01-01 UTC of tz-aware datetimes; naive times raise ValueError."""
    seconds = np.empty(len(times), dtype=float)
    for i, t in enumerate(times):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"tides: naive datetime {t.isoformat()}; give a timezone")
        seconds[i] = (t - _EPOCH).total_seconds()
    return seconds


def _predict_seconds(table: ConstituentTable, seconds: np.ndarray) -> np.ndarray:
    """Predicted levels at epoch seconds: Z0 + sum f A cos(V + u - g)."""
    levels = np.full(seconds.shape, table.z0_m, dtype=float)
    if not table.names or seconds.size == 0:
        return levels
    f, arg = node_terms(seconds, table.names)
    phases_rad = np.deg2rad(table.phases_deg)[np.newaxis, :]
    levels += np.sum(f * table.amplitudes_m[np.newaxis, :] * np.cos(arg - phases_rad), axis=1)
    return levels


def predict_levels(table: ConstituentTable, times: Sequence[datetime]) -> np.ndarray:
    """Predicted water level (m on datum) at tz-aware times, z0 plus the harmonic sum."""
    return _predict_seconds(table, _epoch_seconds(times))


def _extremes_from_seconds(seconds: np.ndarray, levels: np.ndarray) -> list[Extreme]:
    """Local extrema of a series, each refined by a parabola through three points."""
    found: list[Extreme] = []
    n = len(levels)
    i = 1
    while i < n - 1:
        y1 = levels[i]
        if not np.isfinite(y1) or not np.isfinite(levels[i - 1]):
            i += 1
            continue
        # Walk over a flat top/bottom so it counts once.
        j = i
        while j < n - 1 and levels[j + 1] == y1:
            j += 1
        if j >= n - 1 or not np.isfinite(levels[j + 1]):
            i = j + 1
            continue
        y0, y2 = levels[i - 1], levels[j + 1]
        if y1 > y0 and y1 > y2:
            kind = "high"
        elif y1 < y0 and y1 < y2:
            kind = "low"
        else:
            i = j + 1
            continue
        time_s, level_m = 0.5 * (seconds[i] + seconds[j]), float(y1)
        step_before, step_after = seconds[i] - seconds[i - 1], seconds[i + 1] - seconds[i]
        if i == j and abs(step_before - step_after) < 1e-6:
            curvature = y0 - 2.0 * y1 + y2
            offset = 0.5 * (y0 - y2) / curvature
            time_s += offset * step_after
            level_m = float(y1 - 0.25 * (y0 - y2) * offset)
        time_s = round(time_s / 60.0) * 60.0
        found.append(Extreme(_EPOCH + timedelta(seconds=time_s), level_m, kind))
        i = j + 1
    return found


def find_extremes(times: Sequence[datetime], levels_m: np.ndarray) -> list[Extreme]:
    """Highs and lows of a regular series (tz-aware times), refined to the minute."""
    levels = np.asarray(levels_m, dtype=float)
    if len(times) != len(levels):
        raise ValueError(f"tides: {len(times)} times but {len(levels)} levels")
    return _extremes_from_seconds(_epoch_seconds(times), levels)


def high_low_waters(
    table: ConstituentTable, start: datetime, end: datetime, step_minutes: int = 6
) -> list[Extreme]:
    """Predicted high and low waters between two tz-aware times."""
    start_s, end_s = _epoch_seconds([start, end])
    if step_minutes <= 0:
        raise ValueError("tides: step_minutes must be positive")
    seconds = np.arange(start_s, end_s + 1e-6, step_minutes * 60.0)
    extremes = _extremes_from_seconds(seconds, _predict_seconds(table, seconds))
    # Re-predict at the refined minute so the level is the curve's, not the parabola's.
    refined = _predict_seconds(
        table, np.array([(e.time - _EPOCH).total_seconds() for e in extremes])
    )
    return [
        Extreme(e.time, float(level), e.kind) for e, level in zip(extremes, refined, strict=True)
    ]


def _perihelion_deg(seconds: float) -> float:
    """Mean longitude of the solar perihelion p' (degrees) at epoch seconds."""
    import pyTMD.astro

    *_, pp = pyTMD.astro.mean_longitudes(seconds / 86400.0 + 40587.0, method="ASTRO5")
    return float(np.asarray(pp).ravel()[0]) % 360.0


def fit_constituents(
    station: str, times: Sequence[datetime], levels_m: np.ndarray, latitude: float
) -> tuple[ConstituentTable, float]:
    """Fit a table to observed levels with utide; return it and its RMS residual (m)."""
    import utide  # slow import, only needed here

    seconds = _epoch_seconds(times)
    levels = np.asarray(levels_m, dtype=float)
    if len(seconds) != len(levels):
        raise InputError(f"{station}: {len(seconds)} times but {len(levels)} levels")
    valid = np.isfinite(levels)
    if not valid.any():
        raise InputError(f"{station}: every water level is missing (NaN); nothing to fit")
    span_days = (seconds[valid].max() - seconds[valid].min()) / 86400.0
    if span_days < 2.0:
        raise InputError(f"{station}: {span_days:.1f} days of data; need at least 2 to fit tides")
    days = seconds[valid] / 86400.0
    coef = utide.solve(days, levels[valid], lat=latitude, epoch="1970-01-01", **UTIDE_OPTIONS)
    perihelion_deg = _perihelion_deg(float(np.median(seconds[valid])))
    names, amplitudes, phases = [], [], []
    for name, amplitude, phase in zip(coef.name, coef.A, coef.g, strict=True):
        name = canonical(str(name))
        if not known(name):
            logger.warning("tides: %s: dropping %s (unknown to the tide engine)", station, name)
            continue
        names.append(name)
        amplitudes.append(float(amplitude))
        phase_deg = float(phase) - UTIDE_PERIHELION_TERM.get(name, 0.0) * perihelion_deg
        phases.append(phase_deg % 360.0)
    table = ConstituentTable(
        station, float(coef.mean), tuple(names), np.array(amplitudes), np.array(phases)
    )
    residual = levels[valid] - _predict_seconds(table, seconds[valid])
    rms_m = float(np.sqrt(np.mean(residual**2)))
    logger.info("tides: %s: fitted %d constituents, rms %.3f m", station, len(names), rms_m)
    return table, rms_m
