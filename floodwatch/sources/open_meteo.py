"""Open-Meteo hourly precipitation, many points per request; times coerced to UTC here.

Rows up to `now` are stored as observed and later rows as forecasts issued at
`now` floored to the hour. The "observed" hours are Open-Meteo's own model
analysis of the past hours, not a rain gauge: the best rain history there is
where the province has no gauge, but a gauge (http_json or drop folder) should
be preferred where one exists.

Terms of use: the free tier (under 600 calls/min, 5,000/hour, 10,000/day) is for
non-commercial use only. Commercial use needs an API key, sent as the `apikey`
query parameter (set `apikey_env` to the environment variable holding it), and
the `customer-` host, e.g. `base_url = "https://customer-api.open-meteo.com/v1/forecast"`;
`check` warns about a free host (`open_meteo_terms`). The data are CC BY 4.0,
with a link to open-meteo.com next to where they are shown (`OPEN_METEO_CREDIT`):
https://open-meteo.com/en/licence.
Open-Meteo counts each point of a multi-point request as a call, so polling
100 points hourly costs about 2,400 of the 10,000 daily calls: raise
`interval_minutes` before adding hundreds of grid points.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.settings import MAX_STALE_MINUTES
from floodwatch.core.text import Credit
from floodwatch.errors import ConfigError, SourceError
from floodwatch.sources import FetchResult, Rejection, SourceContext, SourceSettingsBase
from floodwatch.sources._http import get_json

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

# Open-Meteo's data licence and the credit it asks for next to the data.
OPEN_METEO_CREDIT = Credit("weather", "Open-Meteo.com", "CC BY 4.0", "https://open-meteo.com/")
# Commercial plans are served from hosts starting with this (with an `apikey`).
CUSTOMER_PREFIX = "customer-"


def open_meteo_terms(name: str, base_url: str, apikey_env: str | None) -> list[str]:
    """A warning when a source uses Open-Meteo's free, non-commercial API (or a plan's
    host without its key); nothing for another host (a self-hosted Open-Meteo, a test)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if not (host == "open-meteo.com" or host.endswith(".open-meteo.com")):
        return []
    if not host.startswith(CUSTOMER_PREFIX):
        return [
            f"sources.{name}: {host} is Open-Meteo's free API, for non-commercial use "
            "only; a public service needs a subscription (apikey_env and the "
            f"{CUSTOMER_PREFIX} host): docs/configuration.md#open-meteo-terms"
        ]
    if not apikey_env:
        return [f"sources.{name}: {host} is Open-Meteo's commercial API; it needs apikey_env"]
    return []


class OpenMeteoRainSettings(SourceSettingsBase):
    """Open-Meteo hourly precipitation (past = observed, future = forecast)."""

    type: Literal["open_meteo_rain"]
    base_url: str = "https://api.open-meteo.com/v1/forecast"
    # Station ids to ask for; default: every station that measures rainfall.
    stations: list[str] | None = None
    past_days: int = Field(2, ge=0, le=92)
    forecast_days: int = Field(3, ge=1, le=16)
    models: str | None = None
    # Name of the environment variable holding a commercial API key (sent as `apikey`).
    apikey_env: str | None = None
    max_points_per_request: int = Field(100, ge=1, le=1000)
    stale_after_minutes: int | None = Field(180, ge=1, le=MAX_STALE_MINUTES)

    def credits(self, resolve) -> list[Credit]:
        """Open-Meteo's data are CC BY 4.0."""
        return [OPEN_METEO_CREDIT]

    def terms_warnings(self, name: str) -> list[str]:
        """The free API is for non-commercial use only."""
        return open_meteo_terms(name, self.base_url, self.apikey_env)


HOURLY_VARIABLE = "precipitation"
UNIT = "mm"


@dataclass(frozen=True)
class Location:
    """One station's point in a request."""

    station: str
    lat: float
    lon: float


def coordinates(values: Sequence[float]) -> str:
    """Comma-separated coordinates, as Open-Meteo takes several points in one request."""
    return ",".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in values)


def build_params(
    locations: Sequence[Location], cfg: OpenMeteoRainSettings, apikey: str | None = None
) -> dict[str, str]:
    """Query parameters of one forecast request for these points (times asked in GMT)."""
    params = {
        "latitude": coordinates([p.lat for p in locations]),
        "longitude": coordinates([p.lon for p in locations]),
        "hourly": HOURLY_VARIABLE,
        "past_days": str(cfg.past_days),
        "forecast_days": str(cfg.forecast_days),
        "timezone": "GMT",
    }
    if cfg.models:
        params["models"] = cfg.models
    if apikey:
        params["apikey"] = apikey
    return params


def floor_hour(when: datetime) -> datetime:
    """`when` in UTC, floored to the hour (the issue time of a forecast)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Series:
    """One point's hourly series from a reply: UTC times, raw values and their unit."""

    station: str
    times: list[datetime]
    values: list
    unit: object


def locations_of(payload: object, n_points: int, source: str) -> list[dict]:
    """The per-point objects of a reply, in request order; SourceError if it is not one.

    With one point Open-Meteo replies with one object, with several with an
    array in request order (each item carrying `location_id` in newer
    versions). A 200 body can still be `{"error": true, "reason": "..."}`.
    """
    import numpy as np

    if isinstance(payload, dict) and payload.get("error"):
        raise SourceError(f"{source}: Open-Meteo error: {payload.get('reason') or 'no reason'}")
    items = [payload] if isinstance(payload, dict) else payload
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise SourceError(f"{source}: unexpected reply: not an object or an array of objects")
    for item in items:
        if item.get("error"):
            raise SourceError(f"{source}: Open-Meteo error: {item.get('reason') or 'no reason'}")
    if len(items) != n_points:
        raise SourceError(
            f"{source}: unexpected reply: {len(items)} locations for {n_points} points"
        )
    ids = [item.get("location_id") for item in items]
    if all(isinstance(i, int) for i in ids) and sorted(ids) == list(range(n_points)):
        items = [items[i] for i in np.argsort(ids, kind="stable")]
    return items


def _first_bad_time(texts: list) -> object:
    """The first time numpy cannot parse (only looked for once parsing failed)."""
    import numpy as np

    for text in texts:
        try:
            np.datetime64(text, "s")
        except (ValueError, TypeError):
            return text
    return texts[0]


def utc_times(texts: list, offset_s: int, source: str) -> list[datetime]:
    """Open-Meteo's local wall-clock times as aware UTC datetimes (vectorized)."""
    import numpy as np

    # Times come without an offset, local to `utc_offset_seconds`: with
    # timezone=Asia/Bangkok a reply reads {"utc_offset_seconds": 25200,
    # "hourly": {"time": ["2024-12-16T17:00", ...]}}, and 17:00 there is 10:00 UTC.
    # We ask for GMT (offset 0) but honour whatever offset the reply states.
    if not texts:
        return []
    try:
        local = np.array(texts, dtype="datetime64[s]")
    except (ValueError, TypeError):
        raise SourceError(
            f"{source}: unexpected reply: time {_first_bad_time(texts)!r} is not ISO 8601"
        ) from None
    if np.isnat(local).any():
        raise SourceError(f"{source}: unexpected reply: a time is null")
    utc = local - np.timedelta64(offset_s, "s")
    return [t.replace(tzinfo=UTC) for t in utc.astype(datetime).tolist()]


def hourly_series(
    payload: object, station_ids: Sequence[str], variable: str, source: str
) -> Iterator[Series]:
    """Each point's hourly `variable` with UTC times; SourceError on a reply of the wrong shape."""
    items = locations_of(payload, len(station_ids), source)
    cached: tuple[list, int, list[datetime]] | None = None
    for station, item in zip(station_ids, items, strict=True):
        hourly = item.get("hourly")
        if not isinstance(hourly, dict):
            raise SourceError(f"{source}: unexpected reply: no `hourly` for {station}")
        texts, values = hourly.get("time"), hourly.get(variable)
        if not isinstance(texts, list) or not isinstance(values, list):
            raise SourceError(f"{source}: unexpected reply: no `hourly.{variable}` for {station}")
        if len(texts) != len(values):
            raise SourceError(
                f"{source}: unexpected reply: {len(texts)} times but {len(values)} values "
                f"for {station}"
            )
        offset_s = item.get("utc_offset_seconds", 0)
        if isinstance(offset_s, bool) or not isinstance(offset_s, int):
            raise SourceError(f"{source}: unexpected reply: utc_offset_seconds {offset_s!r}")
        # Points of one request share their time axis: convert it once.
        if cached is None or cached[1] != offset_s or cached[0] != texts:
            cached = (texts, offset_s, utc_times(texts, offset_s, source))
        units = item.get("hourly_units")
        unit = units.get(variable) if isinstance(units, dict) else None
        yield Series(station, cached[2], values, unit)


def number_or_rejection(value: object, station: str, when: datetime, variable: str):
    """A finite float, or the Rejection saying why the value cannot be used."""
    if type(value) is float or type(value) is int:
        if math.isfinite(value):
            return float(value)
    elif value is None:
        return Rejection("missing", f"{station} {when:%Y-%m-%dT%H:%MZ}: {variable} is null",
                         station, when)  # fmt: skip
    return Rejection("malformed", f"{station} {when:%Y-%m-%dT%H:%MZ}: {variable} is {value!r}",
                     station, when)  # fmt: skip


def unit_rejections(series: Series, variable: str, expected: str) -> list[Rejection]:
    """Every value of a series whose unit is not the expected one."""
    detail = f"{series.station}: {variable} in {series.unit!r}, expected {expected!r}"
    return [Rejection("unit_mismatch", detail, series.station, t) for t in series.times]


def parse_forecast(
    payload: object, station_ids: Sequence[str], now: datetime, source: str = "open_meteo_rain"
) -> FetchResult:
    """Readings of an hourly precipitation reply: observed up to `now`, forecast after.

    Each value is the rain (mm) of the hour ending at its time (Open-Meteo's
    "preceding hour sum"), which is our `rainfall` meaning.
    """
    result = FetchResult()
    issued = floor_hour(now)
    rainfall, observed, forecast = Variable.RAINFALL, Kind.OBSERVED, Kind.FORECAST
    for series in hourly_series(payload, station_ids, HOURLY_VARIABLE, source):
        if series.unit != UNIT:
            result.rejected.extend(unit_rejections(series, HOURLY_VARIABLE, UNIT))
            continue
        station = series.station
        for when, raw in zip(series.times, series.values, strict=True):
            value = number_or_rejection(raw, station, when, HOURLY_VARIABLE)
            if type(value) is Rejection:
                result.rejected.append(value)
            elif when <= now:
                result.readings.append(Reading(station, rainfall, when, value, observed, when))
            else:
                result.readings.append(Reading(station, rainfall, when, value, forecast, issued))
    return result


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most `size` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def read_apikey(name: str, cfg_env: str | None, context: SourceContext) -> str | None:
    """The API key from the environment variable the config names; ConfigError if it is unset."""
    if not cfg_env:
        return None
    key = context.environ.get(cfg_env, "").strip()
    if not key:
        raise ConfigError([f"sources.{name}.apikey_env: environment variable {cfg_env} is not set"])
    return key


@dataclass
class OpenMeteoRainSource:
    """Hourly rain at every rain station from Open-Meteo, past and forecast, in UTC."""

    name: str
    interval_minutes: int
    cfg: OpenMeteoRainSettings
    locations: list[Location]
    context: SourceContext = field(repr=False)
    apikey: str | None = field(default=None, repr=False)
    stale_after_minutes: int | None = None

    @classmethod
    def from_settings(
        cls, name: str, cfg: OpenMeteoRainSettings, context: SourceContext
    ) -> OpenMeteoRainSource:
        """Points of the configured (or all rainfall) stations; ConfigError on unknown ids."""
        stations = context.geodata.stations
        if cfg.stations is None:
            ids = [s.id for s in stations.values() if Variable.RAINFALL in s.measures]
        else:
            ids = list(dict.fromkeys(cfg.stations))
        problems = [f"sources.{name}.stations: unknown station {i!r}" for i in ids
                    if i not in stations]  # fmt: skip
        problems += [
            f"sources.{name}.stations: station {i!r} does not measure rainfall"
            for i in ids
            if i in stations and Variable.RAINFALL not in stations[i].measures
        ]
        if problems:
            raise ConfigError(problems)
        if not ids:
            logger.warning("%s: no station measures rainfall; nothing to fetch", name)
        return cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            cfg=cfg,
            locations=[Location(i, stations[i].lat, stations[i].lon) for i in ids],
            context=context,
            apikey=read_apikey(name, cfg.apikey_env, context),
            stale_after_minutes=cfg.stale_after_minutes,
        )

    def provides(self) -> set[tuple[str, str]]:
        """Rainfall at every requested station."""
        return {(p.station, Variable.RAINFALL) for p in self.locations}

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """All of Open-Meteo's `past_days` + `forecast_days` hours, one request per chunk.

        The window is not narrowed: the extra past hours feed 24-hour rain totals.
        """
        result = FetchResult()
        for group in chunks(self.locations, self.cfg.max_points_per_request):
            payload = get_json(
                self.context.session,
                self.cfg.base_url,
                name=self.name,
                params=build_params(group, self.cfg, self.apikey),
                timeout_s=self.cfg.timeout_s,
                policy=self.context.policy,
            )
            part = parse_forecast(payload, [p.station for p in group], now, self.name)
            result.readings.extend(part.readings)
            result.rejected.extend(part.rejected)
        logger.info("%s: %d points, %d rows, %d rejected", self.name, len(self.locations),
                    len(result.readings), len(result.rejected))  # fmt: skip
        return result
