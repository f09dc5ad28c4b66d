"""Settings of each data-source type (one `[sources.NAME]` table each, picked by `type`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

# Physical bounds shared by the config and the geodata (docs/configuration.md).
# Elevations and water levels, metres on the national datum (Hòn Dấu): the
# province lies within a few metres of sea level; anything outside is a typo
# or a unit mistake (cm, mm, a survey datum off by a constant).
DATUM_MIN_M = -10.0
DATUM_MAX_M = 20.0
# Flood depths and depth thresholds, metres.
MAX_DEPTH_M = 10.0
MAX_INTERVAL_MINUTES = 24 * 60
MAX_STALE_MINUTES = 7 * 24 * 60
MAX_TIMEOUT_S = 300.0
# Error type of `true`/`false` given for a number (config.parse_settings names the key).
BOOL_FOR_NUMBER = "bool_for_number"


class StrictBase(BaseModel):
    """A settings table: unknown keys, NaN, inf and true/false for a number are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: object) -> object:
        # pydantic would read `interval_minutes = true` as 1 minute.
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if (
                    isinstance(value, bool)
                    and field is not None
                    and field.annotation is not bool
                    and bool not in get_args(field.annotation)
                ):
                    # parse_settings adds `key` to the error's location.
                    raise PydanticCustomError(
                        BOOL_FOR_NUMBER, "true/false is not a valid value here", {"key": name}
                    )
        return data


_Strict = StrictBase  # the name the tables below use


class _Common(_Strict):
    """Keys every source has."""

    enabled: bool = True
    interval_minutes: int = Field(60, ge=1, le=MAX_INTERVAL_MINUTES)
    # The source is "stale" (and its stations blind) when its newest reading is
    # older than this; unset means it never goes stale.
    stale_after_minutes: int | None = Field(None, ge=1, le=MAX_STALE_MINUTES)
    timeout_s: float = Field(20.0, gt=0, le=MAX_TIMEOUT_S)


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
    stale_after_minutes: int | None = Field(180, ge=1, le=MAX_STALE_MINUTES)


class MarinePoint(_Strict):
    """A coastal model point for one tide station, and the transfer to its gauge."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # station level = offset_m + gain x sea_level_height_msl(t - lag)
    offset_m: float = Field(0.0, ge=DATUM_MIN_M, le=DATUM_MAX_M)
    gain: float = Field(1.0, gt=0, le=10)
    # `tide calibrate` searches -6 h..+6 h; a day either way is the outer bound.
    lag_minutes: int = Field(0, ge=-24 * 60, le=24 * 60)


class OpenMeteoSeaLevelSettings(_Common):
    """Open-Meteo Marine modelled sea level, transferred to each tide station."""

    type: Literal["open_meteo_sea_level"]
    base_url: str = "https://marine-api.open-meteo.com/v1/marine"
    stations: dict[str, MarinePoint] = {}
    past_days: int = Field(1, ge=0, le=92)
    forecast_days: int = Field(3, ge=1, le=16)
    apikey_env: str | None = None
    interval_minutes: int = Field(180, ge=1, le=MAX_INTERVAL_MINUTES)
    stale_after_minutes: int | None = Field(720, ge=1, le=MAX_STALE_MINUTES)


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
    interval_minutes: int = Field(15, ge=1, le=MAX_INTERVAL_MINUTES)
    stale_after_minutes: int | None = Field(60, ge=1, le=MAX_STALE_MINUTES)

    @field_validator("scale")
    @classmethod
    def _sane_scale(cls, value: float) -> float:
        # 0.001 (mm to m) .. 1000 (m to mm); 0 would turn every value into 0.
        if not 1e-6 <= abs(value) <= 1e6:
            raise ValueError(f"scale {value:g} must be non-zero, between 1e-6 and 1e6 in size")
        return value


class DropFolderSettings(_Common):
    """CSV files (DESIGN.md format) dropped into a folder."""

    type: Literal["drop_folder"]
    path: Path = Path("../var/drop")
    interval_minutes: int = Field(5, ge=1, le=MAX_INTERVAL_MINUTES)


SourceSettings = Annotated[
    HarmonicSourceSettings
    | OpenMeteoRainSettings
    | OpenMeteoSeaLevelSettings
    | HttpJsonSettings
    | DropFolderSettings,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("harmonic", "open_meteo_rain", "open_meteo_sea_level", "http_json", "drop_folder")


# Validation limits (m of water level, mm of rain in an hour): generous, but finite.
_LIMIT = 10_000.0
# Where hard limits may lie: the datum range for levels; for rain, three times the
# wettest hour on record (305 mm).
_PHYSICAL = {"water_level": (DATUM_MIN_M, DATUM_MAX_M), "rainfall": (0.0, 1000.0)}


class VariableLimits(_Strict):
    """Validation limits of one variable (metres for water level, mm/h for rain)."""

    hard_min: float = Field(ge=-_LIMIT, le=_LIMIT)
    hard_max: float = Field(ge=-_LIMIT, le=_LIMIT)
    soft_min: float = Field(ge=-_LIMIT, le=_LIMIT)
    soft_max: float = Field(ge=-_LIMIT, le=_LIMIT)
    # Largest believable change between consecutive hourly observations.
    max_step_change: float = Field(gt=0, le=_LIMIT)
    # The same non-zero value for this many hours in a row is a stuck sensor.
    flat_hours: int = Field(6, ge=2, le=7 * 24)

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

    @model_validator(mode="after")
    def _physical(self) -> ValidationSettings:
        tables = [("water_level", self.water_level), ("rainfall", self.rainfall)]
        for station, limits in self.stations.items():
            tables += [(f"stations.{station}.{var}", lim) for var, lim in limits.items()]
        for key, limits in tables:
            low, high = _PHYSICAL["water_level" if key.endswith("water_level") else "rainfall"]
            if limits.hard_min < low or limits.hard_max > high:
                raise ValueError(
                    f"{key}: hard_min and hard_max must lie within {low:g}..{high:g} "
                    f"({'m on the national datum' if high == DATUM_MAX_M else 'mm in an hour'})"
                )
        return self


class HttpSettings(_Strict):
    """The one retry policy every HTTP source shares."""

    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0, le=MAX_TIMEOUT_S)
    max_backoff_s: float = Field(60.0, ge=0, le=3600)
    # A Retry-After longer than this is not waited for: the poll fails and the
    # source waits for its next interval (no retry storm).
    max_retry_after_s: float = Field(120.0, ge=0, le=3600)
    user_agent: str = "floodwatch (Cà Mau flood alerts)"
