"""Settings of each data-source type (one `[sources.NAME]` table each, picked by `type`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Common(_Strict):
    """Keys every source has."""

    enabled: bool = True
    interval_minutes: int = Field(60, ge=1)
    # The source is "stale" (and its stations blind) when its newest reading is
    # older than this; unset means it never goes stale.
    stale_after_minutes: int | None = Field(None, ge=1)
    timeout_s: float = Field(20.0, gt=0)


class HarmonicSourceSettings(_Common):
    """Offline tide prediction from per-station constituent tables."""

    type: Literal["harmonic"]
    # Folder with one `<station_id>.csv` constituent table per tide station.
    constituents: Path = Path("tides")


class OpenMeteoRainSettings(_Common):
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
    stale_after_minutes: int | None = Field(180, ge=1)


class MarinePoint(_Strict):
    """A coastal model point for one tide station, and the transfer to its gauge."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # station level = offset_m + gain x sea_level_height_msl(t - lag)
    offset_m: float = 0.0
    gain: float = 1.0
    lag_minutes: int = 0


class OpenMeteoSeaLevelSettings(_Common):
    """Open-Meteo Marine modelled sea level, transferred to each tide station."""

    type: Literal["open_meteo_sea_level"]
    base_url: str = "https://marine-api.open-meteo.com/v1/marine"
    stations: dict[str, MarinePoint] = {}
    past_days: int = Field(1, ge=0, le=92)
    forecast_days: int = Field(3, ge=1, le=16)
    apikey_env: str | None = None
    interval_minutes: int = Field(180, ge=1)
    stale_after_minutes: int | None = Field(720, ge=1)


class HttpJsonSettings(_Common):
    """A generic JSON gauge API, mapped to readings by configuration alone."""

    type: Literal["http_json"]
    # `{station}` in the URL is replaced by each remote station id (one request each).
    url: str
    preset: Literal["vndms", "flat"] | None = None
    # Remote station id -> our station id.
    stations: dict[str, str] = {}
    variable: Literal["water_level", "rainfall"] = "water_level"
    kind: Literal["observed", "forecast"] = "observed"
    headers: dict[str, str] = {}
    # Environment variable holding a token, sent as `<auth_header>: <auth_scheme> <token>`.
    auth_env: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    # Dotted path to the list of records ("" = the document itself).
    records: str = ""
    station_field: str | None = "station"
    time_field: str = "time"
    # "iso", "epoch_s", "epoch_ms" or a strptime format such as "%Y-%m-%d %H:%M".
    time_format: str = "iso"
    # Zone of times that carry no offset.
    time_zone: str = "Asia/Ho_Chi_Minh"
    value_field: str = "value"
    # Multiply values by this to get metres (or mm); 0.01 turns cm into m.
    scale: float = 1.0
    missing: list[float] = [-9999.0, -999.0]
    interval_minutes: int = Field(15, ge=1)
    stale_after_minutes: int | None = Field(60, ge=1)


class DropFolderSettings(_Common):
    """CSV files (DESIGN.md format) dropped into a folder."""

    type: Literal["drop_folder"]
    path: Path = Path("../var/drop")
    interval_minutes: int = Field(5, ge=1)


SourceSettings = Annotated[
    HarmonicSourceSettings
    | OpenMeteoRainSettings
    | OpenMeteoSeaLevelSettings
    | HttpJsonSettings
    | DropFolderSettings,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("harmonic", "open_meteo_rain", "open_meteo_sea_level", "http_json", "drop_folder")


class VariableLimits(_Strict):
    """Validation limits of one variable (metres for water level, mm/h for rain)."""

    hard_min: float
    hard_max: float
    soft_min: float
    soft_max: float
    # Largest believable change between consecutive hourly observations.
    max_step_change: float
    # The same non-zero value for this many hours in a row is a stuck sensor.
    flat_hours: int = Field(6, ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> VariableLimits:
        if not self.hard_min <= self.soft_min < self.soft_max <= self.hard_max:
            raise ValueError("limits must satisfy hard_min <= soft_min < soft_max <= hard_max")
        return self


class ValidationSettings(_Strict):
    """Checks applied to every reading from every source, before storage."""

    water_level: VariableLimits = VariableLimits(
        hard_min=-4.0, hard_max=6.0, soft_min=-2.0, soft_max=3.0, max_step_change=0.8
    )
    rainfall: VariableLimits = VariableLimits(
        hard_min=0.0, hard_max=300.0, soft_min=0.0, soft_max=150.0, max_step_change=200.0
    )
    # Per-station overrides, e.g. [validation.stations.tp_ca_mau.water_level].
    stations: dict[str, dict[Literal["water_level", "rainfall"], VariableLimits]] = {}


class HttpSettings(_Strict):
    """The one retry policy every HTTP source shares."""

    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)
    # A Retry-After longer than this is not waited for: the poll fails and the
    # source waits for its next interval (no retry storm).
    max_retry_after_s: float = Field(120.0, ge=0)
    user_agent: str = "floodwatch (Cà Mau flood alerts)"
