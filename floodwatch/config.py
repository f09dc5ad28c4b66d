"""Load and validate `floodwatch.toml` into typed settings.

Every mistake is reported as one line naming the file and the key, all at once
(`ConfigError.problems`). Relative geodata and tide-table paths resolve against
the config file's folder; a relative SQLite path resolves against the working
directory. Precedence: CLI flag, then `FLOODWATCH_*` environment, then file,
then default.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from floodwatch.core.settings import BOOL_FOR_NUMBER, MAX_DEPTH_M, MAX_TIMEOUT_S, StrictBase
from floodwatch.core.validate import ValidationSettings
from floodwatch.errors import ConfigError, not_utf8
from floodwatch.sources._http import HttpSettings
from floodwatch.sources.drop_folder import DropFolderSettings
from floodwatch.sources.harmonic import HarmonicSourceSettings
from floodwatch.sources.http_json import HttpJsonSettings
from floodwatch.sources.open_meteo import OpenMeteoRainSettings
from floodwatch.sources.open_meteo_marine import OpenMeteoSeaLevelSettings

# One `[sources.NAME]` table, picked by `type`; each provider module owns its settings.
SourceSettings = Annotated[
    HarmonicSourceSettings
    | OpenMeteoRainSettings
    | OpenMeteoSeaLevelSettings
    | HttpJsonSettings
    | DropFolderSettings,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("harmonic", "open_meteo_rain", "open_meteo_sea_level", "http_json", "drop_folder")

DEFAULT_CONFIG = Path("config/floodwatch.toml")
DEFAULT_DATABASE_URL = "sqlite:///var/floodwatch.db"


# Upper bounds shared by the settings (and documented in docs/configuration.md).
WEEK_MINUTES = 7 * 24 * 60
DAY_MINUTES = 24 * 60
# Telegram ids have at most 52 significant bits (Bot API docs); topics are 32-bit.
MAX_TELEGRAM_ID = 2**53 - 1
MAX_THREAD_ID = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

TelegramId = Annotated[int, Field(ge=-MAX_TELEGRAM_ID, le=MAX_TELEGRAM_ID)]
TelegramUserId = Annotated[int, Field(ge=1, le=MAX_TELEGRAM_ID)]
ThreadId = Annotated[int, Field(ge=1, le=MAX_THREAD_ID)]


def _short(value: object, limit: int = 60) -> str:
    """`repr` of a value, cut to `limit` characters so one hostile value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _plain_text(value: str) -> str:
    """A name or id without control characters (PostgreSQL refuses NUL; logs break on others)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, Field(min_length=1), AfterValidator(_plain_text)]


_Strict = StrictBase  # unknown keys, NaN, inf and true/false for a number are refused


class StorageSettings(_Strict):
    """Where the durable store lives."""

    database_url: str = DEFAULT_DATABASE_URL
    # Readings older than this are deleted daily (events are kept for good).
    keep_readings_days: int = Field(400, ge=1, le=3650)


class GeodataSettings(_Strict):
    """Paths of the segment and station GeoJSON files."""

    segments: Path = Path("../geodata/segments.geojson")
    stations: Path = Path("../geodata/stations.geojson")
    # The coast (and rivers) drawn under the web map; unset or "" for none.
    outline: Path | None = None

    @field_validator("outline", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class AssessmentSettings(_Strict):
    """Time grid and depth-model parameters shared by all segments."""

    step_minutes: Literal[15, 20, 30, 60] = 60
    horizon_hours: int = Field(72, ge=1, le=240)
    lookback_hours: int = Field(12, ge=1, le=72)
    # An observed level older than this no longer counts as "now".
    observed_max_age_minutes: int = Field(90, ge=5, le=DAY_MINUTES)
    default_drain_mm_h: float = Field(30.0, gt=0, le=1000)
    # Share of drainage capacity left while the river stands above the outfall.
    blocked_outfall_factor: float = Field(0.25, ge=0, le=1)
    # Ponded depth = stored excess rain x this factor (streets collect runoff
    # from a catchment larger than the carriageway).
    runoff_concentration: float = Field(4.0, gt=0, le=100)
    # Both parts at least this deep make the cause "compound".
    compound_min_m: float = Field(0.02, ge=0, le=1)


class LevelSettings(_Strict):
    """Depth thresholds (m) and their Vietnamese names, shallowest first."""

    thresholds_m: list[Annotated[float, Field(gt=0, le=MAX_DEPTH_M)]] = Field(
        [0.10, 0.30, 0.50], min_length=1, max_length=10
    )
    names: list[str] = [
        "Ngập nhẹ: xe máy đi chậm được",
        "Ngập nửa bánh xe máy: hạn chế đi lại",
        "Ngập sâu: không nên đi qua",
    ]
    # A level is left only when depth falls this far below its threshold.
    hysteresis_m: float = Field(0.03, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> LevelSettings:
        t = self.thresholds_m
        if any(b <= a for a, b in zip(t, t[1:], strict=False)):
            raise ValueError("thresholds_m must be positive and strictly increasing")
        if len(self.names) != len(t):
            raise ValueError(f"names has {len(self.names)} entries for {len(t)} thresholds")
        if self.hysteresis_m >= t[0]:
            raise ValueError("hysteresis_m must be smaller than the first threshold")
        return self


class EventSettings(_Strict):
    """Hysteresis in time, and when a forecast has moved enough to update."""

    # An observed event closes after the road has stayed below level 1 this long.
    close_after_minutes: int = Field(60, ge=0, le=WEEK_MINUTES)
    forecast_shift_minutes: int = Field(60, ge=1, le=DAY_MINUTES)
    forecast_shift_depth_m: float = Field(0.05, gt=0, le=MAX_DEPTH_M)


class RainSettings(_Strict):
    """Lower bounds (mm per 24 h) of the rain categories in the bulletins."""

    # The wettest 24 h on record anywhere is about 1,825 mm.
    categories_mm_24h: list[Annotated[float, Field(ge=0, le=2000)]] = Field(
        [16.0, 51.0, 100.01], max_length=10
    )
    names: list[str] = ["Mưa vừa", "Mưa to", "Mưa rất to"]

    @model_validator(mode="after")
    def _consistent(self) -> RainSettings:
        b = self.categories_mm_24h
        if any(y <= x for x, y in zip(b, b[1:], strict=False)):
            raise ValueError("categories_mm_24h must be strictly increasing")
        if len(self.names) != len(b):
            raise ValueError(f"names has {len(self.names)} entries for {len(b)} categories")
        return self


class UnitSettings(_Strict):
    """A unit responsible for roads, and where its alerts go."""

    id: PlainText
    name: PlainText
    # Telegram chat ids (groups are negative) that receive this unit's alerts.
    telegram_chats: list[TelegramId] = []
    # Forum topic (message thread) inside those chats, if the group uses topics.
    thread_id: ThreadId | None = None
    # Unacknowledged onset / level-up alerts go here after the delay: a unit id or "operators".
    escalate_to: str | None = None
    escalate_after_minutes: int = Field(30, ge=1, le=WEEK_MINUTES)


class CapSettings(_Strict):
    """The CAP 1.2 feed (`floodwatch export cap`, /api/v1/cap.atom)."""

    sender: str = Field("floodwatch@camau.gov.vn", pattern=r"^[^\s,<&]+$")
    # "Actual" in production; "Exercise" for a drill or replay database.
    status: Literal["Actual", "Exercise", "Test"] = "Actual"
    # Events changed within this many days are in the feed.
    feed_days: int = Field(7, ge=1, le=366)


class ServiceSettings(_Strict):
    """How `run` behaves beside a second instance."""

    # A standby instance tries to become active this often (a poll interval or less).
    # Keep it under half of the unit's WatchdogSec: the standby pings the watchdog as it checks.
    standby_check_seconds: int = Field(15, ge=1, le=60)


OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
# OpenStreetMap's tile usage policy: attribution always visible, linked to the copyright page.
OSM_ATTRIBUTION = "© OpenStreetMap contributors"
OSM_COPYRIGHT = "https://www.openstreetmap.org/copyright"


class WebSettings(_Strict):
    """The operators' web: the map's basemap tiles."""

    # A tile URL template with {z}, {x} and {y} (http or https), or "none" for no basemap.
    tiles: str = OSM_TILES
    # Shown on the map under custom tiles (required with them); OpenStreetMap's is built in.
    tiles_attribution: str | None = Field(None, validate_default=True)
    # Where people reach this web (https://ngap.camau.gov.vn); alerts then link each road's
    # page. None: alerts carry no links.
    public_url: str | None = None

    @field_validator("tiles")
    @classmethod
    def _tile_url(cls, value: str) -> str:
        if value == "none":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f'{_short(value)} is not an http(s) tile URL or "none"')
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in value]
        if missing or _CONTROL.search(value) or " " in value:
            raise ValueError(f"{_short(value)} must hold {{z}}, {{x}} and {{y}}, without spaces")
        return value

    @field_validator("tiles_attribution")
    @classmethod
    def _attribution(cls, value: str | None, info: ValidationInfo) -> str | None:
        tiles = info.data.get("tiles")  # absent when `tiles` itself was refused
        if value is not None and (not value.strip() or _CONTROL.search(value)):
            raise ValueError("must be non-empty text without control characters")
        if value is None and tiles not in (None, "none", OSM_TILES):
            raise ValueError("required with custom tiles: who made the tiles and their data")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
            or _CONTROL.search(value)
            or " " in value
        ):
            raise ValueError(
                f"{_short(value)} is not an http(s) address of the web "
                "(like https://ngap.camau.gov.vn, without ? or #)"
            )
        return value.rstrip("/")

    @property
    def tile_origin(self) -> str | None:
        """`https://tile.openstreetmap.org`: where tiles come from (for the CSP), or None."""
        if self.tiles == "none":
            return None
        parts = urlsplit(self.tiles)
        return f"{parts.scheme}://{parts.netloc}"


class TelegramSettings(_Strict):
    """Telegram delivery; the token comes only from FLOODWATCH_TELEGRAM_TOKEN."""

    base_url: str = "https://api.telegram.org/bot"
    # Operators' chats receive every alert and the source-health alarms.
    operators_chats: list[TelegramId] = []
    operators_thread_id: ThreadId | None = None
    # Users allowed to use bot commands, besides members of configured chats.
    allowed_users: list[TelegramUserId] = []
    hydrographs: bool = True
    timeout_s: float = Field(15.0, gt=0, le=MAX_TIMEOUT_S)
    # What the operators' chats get of the units' road alerts: one digest per cycle
    # ("digest"), every unit's alert with its charts ("full"), or nothing ("none").
    operators_copy: Literal["digest", "full", "none"] = "digest"


class AlertSettings(_Strict):
    """When alerts repeat, and the daily bulletin."""

    # A reminder for each road still flooded, this long after its last alert.
    repeat_interval_minutes: int = Field(180, ge=10, le=WEEK_MINUTES)
    # Local time (HH:MM) of the daily bulletin; empty to turn it off.
    daily_bulletin_at: str = "06:00"
    # An alert sent more than this long after the moment it describes says so in its
    # first line ("⏱ Gửi trễ …").
    late_after_minutes: int = Field(15, ge=1, le=DAY_MINUTES)

    @field_validator("daily_bulletin_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"daily_bulletin_at {value!r} is not HH:MM")
        return value


class Settings(_Strict):
    """The whole validated configuration."""

    timezone: str = "Asia/Ho_Chi_Minh"
    storage: StorageSettings = StorageSettings()
    geodata: GeodataSettings = GeodataSettings()
    assessment: AssessmentSettings = AssessmentSettings()
    levels: LevelSettings = LevelSettings()
    events: EventSettings = EventSettings()
    rain: RainSettings = RainSettings()
    sources: dict[str, SourceSettings] = {}
    validation: ValidationSettings = ValidationSettings()
    http: HttpSettings = HttpSettings()
    service: ServiceSettings = ServiceSettings()
    cap: CapSettings = CapSettings()
    telegram: TelegramSettings = TelegramSettings()
    alerts: AlertSettings = AlertSettings()
    web: WebSettings = WebSettings()
    units: list[UnitSettings] = []
    # Who gets source-health alarms ("mất tín hiệu"): a unit id, or "operators".
    operators_unit: str = "operators"
    # Set by the loader, not by the file.
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a 10,000-character name
            raise ValueError(f"unknown time zone {_short(value)}") from None
        return value

    @field_validator("units")
    @classmethod
    def _unique_units(cls, units: list[UnitSettings]) -> list[UnitSettings]:
        # A field validator (not a model one) so the error names the `units` key.
        seen: set[str] = set()
        for unit in units:
            if unit.id in seen:
                raise ValueError(f"unit id {unit.id!r} is defined twice")
            seen.add(unit.id)
        return units

    @model_validator(mode="after")
    def _operators_known(self) -> Settings:
        if self.operators_unit != "operators" and self.operators_unit not in self.unit_ids:
            raise ValueError(
                f'operators_unit {self.operators_unit!r} is not a unit id (or "operators")'
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The display time zone."""
        return ZoneInfo(self.timezone)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths resolve against."""
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """Resolve a path from the file against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def unit_ids(self) -> set[str]:
        """Ids of all configured units."""
        return {u.id for u in self.units}


def _location(loc: tuple) -> str:
    """Turn a pydantic error location into a dotted TOML key."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item in SOURCE_TYPES:  # discriminator tag pydantic adds to the path
            continue
        else:
            parts.append(str(item))
    dotted = ".".join(parts) or "(top level)"
    return dotted if len(dotted) <= 200 else f"{dotted[:199]}…"


def _full_loc(err: dict) -> tuple:
    """The error's location, with the key a table-level check named (`true` for a number)."""
    if err["type"] == BOOL_FOR_NUMBER:
        return (*err["loc"], err["ctx"]["key"])
    return err["loc"]


def _message(err: dict) -> str:
    """A short English description of one validation error."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        known = ", ".join(SOURCE_TYPES)
        return f"unknown source type {_short(err['input'].get('type'))} (known: {known})"
    if kind == "int_parsing_size":  # e.g. 1e26 for a whole number of minutes
        return "number too large for a whole number"
    if kind == "union_tag_not_found":
        return f"source needs a `type` (known: {', '.join(SOURCE_TYPES)})"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def parse_settings(data: dict, origin: str = "<config>", path: Path | None = None) -> Settings:
    """Validate an already-parsed TOML document; raise ConfigError listing every problem."""
    try:
        settings = Settings.model_validate({**data, "config_path": path})
    except ValidationError as exc:
        problems = [f"{origin}: {_location(_full_loc(e))}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(problems) from None
    return settings


def load_settings(path: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read, validate and apply environment overrides to the config file."""
    env = os.environ if env is None else env
    path = Path(path or env.get("FLOODWATCH_CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows Notepad) is harmless
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([not_utf8(path, exc, "config file")]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc.strerror or exc})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid TOML: nested too deeply"]) from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise ConfigError([f"{path}: not valid TOML: a number has more than 4300 digits"]) from None
    settings = parse_settings(data, str(path), path.resolve())
    if url := env.get("FLOODWATCH_DATABASE_URL"):
        settings = settings.model_copy(
            update={"storage": settings.storage.model_copy(update={"database_url": url})}
        )
    return settings


def check_paths(settings: Settings) -> list[str]:
    """Problems with files the settings point at (geodata, tide tables, the database)."""
    origin = str(settings.config_path or "<config>")
    problems = []
    for key in ("segments", "stations", "outline"):
        path = getattr(settings.geodata, key)
        target = settings.resolve(path) if path is not None else None
        if target is not None and not target.is_file():
            problems.append(f"{origin}: geodata.{key}: file not found: {target}")
    for name, source in settings.sources.items():
        if source.type == "harmonic":
            folder = settings.resolve(source.constituents)
            if not folder.is_dir():
                problems.append(
                    f"{origin}: sources.{name}.constituents: folder not found: {folder}"
                )
    return problems
