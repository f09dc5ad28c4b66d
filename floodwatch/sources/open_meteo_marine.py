"""Open-Meteo Marine modelled sea level, transferred to each tide station; times in UTC.

`sea_level_height_msl` is modelled (tide plus surge, relative to mean sea level)
at a coastal sea cell, so each tide station gets a transfer from its sea point
to its gauge: level_m = offset_m + gain x sea_level_height_msl, placed
`lag_minutes` after the model time, because the tide reaches an inland gauge
damped and late. Every row is a forecast issued at `now` floored to the hour,
including past hours: a model value is never an observation.
`floodwatch tide calibrate` fits the transfer from observed levels.

The free tier is non-commercial (see `floodwatch.sources.open_meteo`); commercial
use needs `apikey_env` and the `customer-marine-api.open-meteo.com` host.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.settings import (
    DATUM_MAX_M,
    DATUM_MIN_M,
    MAX_INTERVAL_MINUTES,
    MAX_STALE_MINUTES,
    StrictBase,
)
from floodwatch.core.text import Credit
from floodwatch.errors import ConfigError, InputError, SourceError
from floodwatch.sources import FetchResult, Rejection, SourceContext, SourceSettingsBase
from floodwatch.sources._http import RetryPolicy, get_json
from floodwatch.sources.open_meteo import (
    OPEN_METEO_CREDIT,
    coordinates,
    floor_hour,
    hourly_series,
    number_or_rejection,
    open_meteo_terms,
    read_apikey,
    unit_rejections,
)

if TYPE_CHECKING:
    import numpy as np
    import requests

logger = logging.getLogger(__name__)


class MarinePoint(StrictBase):
    """A coastal model point for one tide station, and the transfer to its gauge."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # station level = offset_m + gain x sea_level_height_msl(t - lag)
    offset_m: float = Field(0.0, ge=DATUM_MIN_M, le=DATUM_MAX_M)
    gain: float = Field(1.0, gt=0, le=10)
    # `tide calibrate` searches -6 h..+6 h; a day either way is the outer bound.
    lag_minutes: int = Field(0, ge=-24 * 60, le=24 * 60)


class OpenMeteoSeaLevelSettings(SourceSettingsBase):
    """Open-Meteo Marine modelled sea level, transferred to each tide station."""

    type: Literal["open_meteo_sea_level"]
    base_url: str = "https://marine-api.open-meteo.com/v1/marine"
    stations: dict[str, MarinePoint] = {}
    past_days: int = Field(1, ge=0, le=92)
    forecast_days: int = Field(3, ge=1, le=16)
    apikey_env: str | None = None
    interval_minutes: int = Field(180, ge=1, le=MAX_INTERVAL_MINUTES)
    stale_after_minutes: int | None = Field(720, ge=1, le=MAX_STALE_MINUTES)

    def credits(self, resolve) -> list[Credit]:
        """Open-Meteo's data are CC BY 4.0."""
        return [OPEN_METEO_CREDIT]

    def terms_warnings(self, name: str) -> list[str]:
        """The free API is for non-commercial use only."""
        return open_meteo_terms(name, self.base_url, self.apikey_env)


HOURLY_VARIABLE = "sea_level_height_msl"
UNIT = "m"
MIN_OVERLAP = 24


def _base_params(points: Sequence[MarinePoint], apikey: str | None) -> dict[str, str]:
    """Parameters every marine request has (sea cells only, times in GMT)."""
    params = {
        "latitude": coordinates([p.lat for p in points]),
        "longitude": coordinates([p.lon for p in points]),
        "hourly": HOURLY_VARIABLE,
        "timezone": "GMT",
        # The nearest cell may be land (no sea level); ask for the nearest sea cell.
        "cell_selection": "sea",
    }
    if apikey:
        params["apikey"] = apikey
    return params


def build_params(
    points: Sequence[MarinePoint], cfg: OpenMeteoSeaLevelSettings, apikey: str | None = None
) -> dict[str, str]:
    """Query parameters of the polling request: all points, `past_days` + `forecast_days`."""
    return {
        **_base_params(points, apikey),
        "past_days": str(cfg.past_days),
        "forecast_days": str(cfg.forecast_days),
    }


def build_period_params(
    point: MarinePoint, start_date: date, end_date: date, apikey: str | None = None
) -> dict[str, str]:
    """Query parameters for one point over whole UTC days [start_date, end_date] (calibration)."""
    return {
        **_base_params([point], apikey),
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
    }


def parse_sea_level(
    payload: object,
    points: dict[str, MarinePoint],
    now: datetime,
    source: str = "open_meteo_sea_level",
) -> FetchResult:
    """Station levels from a marine reply (points in request order), with each transfer applied."""
    result = FetchResult()
    issued = floor_hour(now)
    for series in hourly_series(payload, list(points), HOURLY_VARIABLE, source):
        if series.unit != UNIT:
            result.rejected.extend(unit_rejections(series, HOURLY_VARIABLE, UNIT))
            continue
        station, point = series.station, points[series.station]
        lag = timedelta(minutes=point.lag_minutes)
        for when, raw in zip(series.times, series.values, strict=True):
            value = number_or_rejection(raw, station, when, HOURLY_VARIABLE)
            if type(value) is Rejection:
                result.rejected.append(value)
                continue
            level_m = round(point.offset_m + point.gain * value, 4)
            result.readings.append(
                Reading(station, Variable.WATER_LEVEL, when + lag, level_m, Kind.FORECAST, issued)
            )
    return result


def parse_model_series(
    payload: object, source: str = "open_meteo_sea_level"
) -> tuple[list[datetime], np.ndarray]:
    """The raw sea level of a one-point reply (UTC times, metres); unusable values dropped."""
    import numpy as np

    (series,) = hourly_series(payload, ["point"], HOURLY_VARIABLE, source)
    if series.unit != UNIT:
        raise SourceError(f"{source}: sea level in {series.unit!r}, expected {UNIT!r}")
    pairs = [
        (when, value)
        for when, raw in zip(series.times, series.values, strict=True)
        if type(value := number_or_rejection(raw, "point", when, HOURLY_VARIABLE)) is float
    ]
    return [t for t, _ in pairs], np.array([v for _, v in pairs], dtype=float)


def fetch_model_series(
    cfg: OpenMeteoSeaLevelSettings,
    point: MarinePoint,
    start: datetime,
    end: datetime,
    *,
    session: requests.Session,
    policy: RetryPolicy,
    apikey: str | None = None,
    name: str = "open_meteo_sea_level",
) -> tuple[list[datetime], np.ndarray]:
    """The raw modelled sea level at `point` over the UTC days spanning [start, end]."""
    params = build_period_params(
        point, start.astimezone(UTC).date(), end.astimezone(UTC).date(), apikey
    )
    payload = get_json(session, cfg.base_url, name=name, params=params, timeout_s=cfg.timeout_s,
                       policy=policy)  # fmt: skip
    return parse_model_series(payload, name)


@dataclass(frozen=True)
class TransferFit:
    """The best transfer from modelled sea level to a gauge, and how well it fits."""

    offset_m: float
    gain: float
    lag_minutes: int
    rms_m: float
    n: int


def _epoch_s(times) -> np.ndarray:
    """Seconds since the epoch of aware datetimes or datetime64 values."""
    import numpy as np

    array = np.asarray(times)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[ms]").astype(np.int64) / 1000.0
    return np.array([t.timestamp() for t in times], dtype=float)


def interpolator(model_t: np.ndarray, model_v: np.ndarray, max_gap_s: float = 3 * 3600.0):
    """The model series as a function of time: cubic spline, NaN outside it or in gaps over 3 h.

    Linear interpolation would flatten the tide between hourly values (by about
    3 % at half-hour lags, for the M2 tide), which the fit would wrongly take
    for a larger gain.
    """
    import numpy as np
    from scipy.interpolate import CubicSpline  # scipy comes with utide

    spline = CubicSpline(model_t, model_v) if model_t.size >= 4 else None

    def at(query_t: np.ndarray) -> np.ndarray:
        out = np.full(query_t.shape, np.nan)
        if spline is None:
            return out
        inside = (query_t >= model_t[0]) & (query_t <= model_t[-1])
        after = np.clip(np.searchsorted(model_t, query_t), 1, model_t.size - 1)
        inside &= (model_t[after] - model_t[after - 1]) <= max_gap_s
        out[inside] = spline(query_t[inside])
        return out

    return at


def fit_transfer(
    obs_times,
    obs_levels_m,
    model_times,
    model_levels_m,
    lags_minutes: Sequence[int] = range(-360, 361, 10),
) -> TransferFit:
    """Least-squares obs ~ offset + gain x model(t - lag), at the lag of the lowest RMS.

    The model series is interpolated at each observation time minus the lag;
    only observations inside the model period count. Raises InputError when
    fewer than 24 observations overlap the model at every lag.
    """
    import numpy as np

    obs_t, obs_v = _epoch_s(obs_times), np.asarray(obs_levels_m, dtype=float)
    model_t, model_v = _epoch_s(model_times), np.asarray(model_levels_m, dtype=float)
    keep = np.isfinite(model_v)
    model_t, model_v = model_t[keep], model_v[keep]
    model_t, first = np.unique(model_t, return_index=True)  # sorted, one value per time
    model_v = model_v[first]
    model = interpolator(model_t, model_v)
    best: TransferFit | None = None
    most = 0
    for lag in lags_minutes:
        model_v_at = model(obs_t - lag * 60.0)
        ok = np.isfinite(model_v_at) & np.isfinite(obs_v)
        n = int(ok.sum())
        most = max(most, n)
        if n < MIN_OVERLAP:
            continue
        design = np.column_stack([np.ones(n), model_v_at[ok]])
        (offset_m, gain), *_ = np.linalg.lstsq(design, obs_v[ok], rcond=None)
        rms_m = float(np.sqrt(np.mean((obs_v[ok] - design @ (offset_m, gain)) ** 2)))
        if best is None or rms_m < best.rms_m:
            best = TransferFit(float(offset_m), float(gain), int(lag), rms_m, n)
    if best is None:
        raise InputError(
            f"only {most} observations overlap the modelled sea level (need {MIN_OVERLAP})"
        )
    return best


@dataclass
class SeaLevelSource:
    """Modelled sea level at each tide station's sea point, turned into the station's level."""

    name: str
    interval_minutes: int
    cfg: OpenMeteoSeaLevelSettings
    context: SourceContext = field(repr=False)
    apikey: str | None = field(default=None, repr=False)
    stale_after_minutes: int | None = None

    @classmethod
    def from_settings(
        cls, name: str, cfg: OpenMeteoSeaLevelSettings, context: SourceContext
    ) -> SeaLevelSource:
        """Check the configured stations; ConfigError with one line per problem."""
        stations = context.geodata.stations
        problems = []
        for station in cfg.stations:
            if station not in stations:
                problems.append(f"sources.{name}.stations: unknown station {station!r}")
            elif Variable.WATER_LEVEL not in stations[station].measures:
                problems.append(
                    f"sources.{name}.stations: station {station!r} does not measure water_level"
                )
        if not cfg.stations:
            problems.append(
                f"sources.{name}.stations: no points; add [sources.{name}.stations.STATION] "
                "tables with lat and lon"
            )
        if problems:
            raise ConfigError(problems)
        return cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            cfg=cfg,
            context=context,
            apikey=read_apikey(name, cfg.apikey_env, context),
            stale_after_minutes=cfg.stale_after_minutes,
        )

    def provides(self) -> set[tuple[str, str]]:
        """Water level at every configured station."""
        return {(station, Variable.WATER_LEVEL) for station in self.cfg.stations}

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """All points in one request, `past_days` + `forecast_days` (the window is not narrowed)."""
        payload = get_json(
            self.context.session,
            self.cfg.base_url,
            name=self.name,
            params=build_params(list(self.cfg.stations.values()), self.cfg, self.apikey),
            timeout_s=self.cfg.timeout_s,
            policy=self.context.policy,
        )
        result = parse_sea_level(payload, dict(self.cfg.stations), now, self.name)
        logger.info("%s: %d points, %d rows, %d rejected", self.name, len(self.cfg.stations),
                    len(result.readings), len(result.rejected))  # fmt: skip
        return result
