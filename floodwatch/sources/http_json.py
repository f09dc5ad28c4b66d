"""A generic JSON gauge API (provincial gauge systems, IoT gateways), mapped by config alone.

Shape: build the requests (pure: one per remote station when the URL has
`{station}`, else one for all), fetch each with the shared `get_json` (the only
IO), and `parse_records` (pure) into readings plus a `Rejection` for every value
that could not be used. Every time is coerced to UTC here: times without an
offset are read in `time_zone` (Vietnam local time by default).

A failed request costs only its own station(s): the other stations' readings
still arrive and the failure is reported as `Rejection("fetch_failed")`. Only
when every request failed does `fetch` raise `SourceError`.

Presets fill the mapping so that a system can be plugged in with just `url`,
`preset` and `stations` (keys set in the file always win over the preset):

- `preset = "vndms"`: the public water-level service of the national disaster
  monitoring system (VNDMS, `https://vndms.dmc.gov.vn/home/detailRain`). One
  form **POST** per station: `id=<remote id>&timeSelect=7&source=Water&fromDate=&toDate=`
  (seven days, as every public client asks), with a browser-like User-Agent
  and the site as Referer/Origin, which public clients send and the service
  expects. The reply (seen from public crawlers; the time labels carry no
  year, values are metres on the national datum)::

      {"name_vn": "Cà Mau", "river_name": "Gành Hào", "province_name": "Cà Mau",
       "labels": "0h \\n15/11,1h \\n15/11,2h \\n15/11",
       "value": "1.02,1.05,-",
       "bao_dong1": "0.65", "bao_dong2": "0.75", "bao_dong3": "0.85",
       "gia_tri_lu_lich_su": "1.21", "nam_lu_lich_su": "2025"}

  `labels` and `value` are comma-separated strings (lists are taken too);
  a label is `Hh dd/mm` with a space or an (escaped) line break between the
  hour and the day, or, in older replies, `7h30/12` (07:00 on 30 December).
  The year is the one that puts the time at most a day after the poll, so
  December's values read in January land in the old year. Values `-`,
  `null` and empty are missing. `bao_dong1..3` (the alarm levels, BĐ I–III;
  sometimes a comma-separated repeat of the same number) are the unit check
  against our `alarm_m`, and are kept with the record flood
  (`gia_tri_lu_lich_su`, `nam_lu_lich_su`) as the station's reference.

  Unit check: if the payload's alarm levels are within 15 % of our `alarm_m`
  divided by `scale` the unit holds; if they are 100 times that (or a
  hundredth), the gauge sends centimetres (or metres) and that station's
  values are rejected as `unit_mismatch` rather than stored 100 times off.

- `preset = "flat"`: a JSON list of objects, times ISO 8601, values in metres::

      [{"station": "CM01", "time": "2024-12-16T17:00:00+07:00", "value": 1.05}, ...]

Values may be JSON numbers or numeric strings (some gateways quote them);
`null`, NaN, `-`, an empty string and the `missing` markers (such as -9999)
are `missing`; anything else is `malformed`. Each station's payload is read on
its own: one station's error never drops the others. The adapter does not
judge plausibility (spikes, stuck sensors, limits): validation does that for
every source.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.settings import MAX_INTERVAL_MINUTES, MAX_STALE_MINUTES
from floodwatch.errors import ConfigError, SourceError
from floodwatch.sources import FetchResult, Rejection, SourceContext, SourceSettingsBase
from floodwatch.sources._http import RetryPolicy, get_json

if TYPE_CHECKING:
    import requests

    from floodwatch.core.geo import Station

logger = logging.getLogger(__name__)


class HttpJsonSettings(SourceSettingsBase):
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


STATION_PLACEHOLDER = "{station}"
TIME_FORMATS = ("iso", "epoch_s", "epoch_ms", "vndms")
# Strings gauges send for "no value".
MISSING_TEXT = frozenset({"", "-", "--", "---", "null", "none", "nan", "n/a"})
# VNDMS: what its public clients post for each station, and send as headers.
VNDMS_FORM = {"timeSelect": "7", "source": "Water", "fromDate": "", "toDate": ""}
BROWSER_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
# "0h 15/11", "0h \n15/11" (an escaped line break), "7h30 15/11", the older "7h30/12".
_VNDMS_LABEL = re.compile(r"(\d{1,2})h(?:(\d{2})(?=\s))?\s*(\d{1,2})/(\d{1,2})(?:/(\d{4}))?")
# A label's time may lie this far after the poll (a gauge clock a little ahead).
VNDMS_AHEAD = timedelta(days=1)
# Our alarm levels vs the payload's bao_dong1..3: how close counts as "the same".
ALARM_TOLERANCE = 0.15
ALARM_KEYS = ("bao_dong1", "bao_dong2", "bao_dong3")

PRESETS: dict[str, dict[str, object]] = {
    "vndms": {
        "columns": True,
        "form": True,
        "records": "",
        "station_field": None,
        "time_field": "labels",
        "value_field": "value",
        # "0h \n15/11": hour, day/month, local Vietnam time, no year (parse_vndms_label).
        "time_format": "vndms",
        "time_zone": "Asia/Ho_Chi_Minh",
        "scale": 1.0,
    },
    "flat": {
        "columns": False,
        "records": "",
        "station_field": "station",
        "time_field": "time",
        "time_format": "iso",
        "value_field": "value",
    },
}


@dataclass(frozen=True)
class RecordMap:
    """How one payload turns into readings (settings with the preset applied)."""

    variable: Variable
    kind: Kind
    records: str
    station_field: str | None
    time_field: str
    time_format: str
    zone: ZoneInfo
    value_field: str
    scale: float
    missing: tuple[float, ...]
    # Remote station id -> our station id; empty means remote ids are our ids.
    stations: Mapping[str, str]
    # Our stations that measure `variable`, with their alarm levels in metres.
    alarms_m: Mapping[str, tuple[float | None, ...]]
    # Parallel arrays (VNDMS) instead of a list of objects.
    columns: bool = False

    def our_station(self, remote: str) -> str | None:
        """Our id for a remote station id, or None when it is not ours."""
        station = self.stations.get(remote) if self.stations else remote
        return station if station in self.alarms_m else None


def _setting(cfg: HttpJsonSettings, key: str) -> object:
    """A mapping setting: the file's value, else the preset's, else the default."""
    if key in cfg.model_fields_set:
        return getattr(cfg, key)
    preset = PRESETS.get(cfg.preset or "", {})
    if key in preset:
        return preset[key]
    if key == "station_field" and STATION_PLACEHOLDER in cfg.url:
        return None  # the URL names the station
    return getattr(cfg, key)


@dataclass(frozen=True)
class Request:
    """One request of a fetch: which remote station it asks for, where, and any form."""

    remote: str | None
    url: str
    form: dict[str, str] | None = None


def build_requests(url: str, remote_ids: list[str], form: bool = False) -> list[Request]:
    """The requests one fetch makes: one per station (a form, or `{station}` in the URL)."""
    if form:
        return [Request(rid, url, {"id": rid, **VNDMS_FORM}) for rid in remote_ids]
    if STATION_PLACEHOLDER not in url:
        return [Request(None, url)]
    # str.replace, not format(): other braces in a URL are not ours to fill.
    return [
        Request(rid, url.replace(STATION_PLACEHOLDER, quote(rid, safe=""))) for rid in remote_ids
    ]


def browser_headers(url: str) -> dict[str, str]:
    """The headers VNDMS's public clients send: a browser User-Agent, the site as Referer."""
    parts = urlsplit(url)
    site = f"{parts.scheme}://{parts.netloc}"
    return {"User-Agent": BROWSER_USER_AGENT, "Referer": site + "/", "Origin": site}


def parse_vndms_label(raw: object, zone: ZoneInfo, now: datetime) -> datetime:
    """A VNDMS time label (no year) as aware UTC; ValueError with the reason otherwise.

    The year is the one that puts the time at most VNDMS_AHEAD after `now`.
    """
    if not isinstance(raw, str):
        raise ValueError(f"time {raw!r} is not text")
    # Labels carry a line break for the chart, sometimes escaped twice: "0h \\n15/11".
    text = " ".join(raw.replace("\\n", " ").split())
    match = _VNDMS_LABEL.fullmatch(text)
    if match is None:
        raise ValueError(f"time {raw[:40]!r} is not a VNDMS label like '0h 15/11'")
    hour, minute, day, month, year = match.groups()
    local_now = now.astimezone(zone)
    try:
        when = datetime(
            int(year) if year else local_now.year, int(month), int(day), int(hour),
            int(minute or 0), tzinfo=zone,
        )  # fmt: skip
        if not year and when > local_now + VNDMS_AHEAD:
            when = when.replace(year=when.year - 1)
    except ValueError:
        raise ValueError(f"time {raw[:40]!r} is not a date") from None
    return when.astimezone(UTC)


def _at_path(doc: object, path: str) -> object:
    """The value at a dotted path ("" = the document); KeyError when it is not there."""
    node = doc
    for part in path.split(".") if path else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


def parse_time(
    raw: object, time_format: str, zone: ZoneInfo, now: datetime | None = None
) -> datetime:
    """A payload time as aware UTC; ValueError with the reason otherwise.

    `now` (the poll time) places VNDMS labels, which have no year.
    """
    if time_format == "vndms":
        return parse_vndms_label(raw, zone, now or datetime.now(UTC))
    if time_format in ("epoch_s", "epoch_ms"):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"time {raw!r} is not a number of seconds")
        try:
            seconds = float(raw) / (1000.0 if time_format == "epoch_ms" else 1.0)
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"time {raw!r} is not a {time_format} time") from None
    if not isinstance(raw, str):
        raise ValueError(f"time {str(raw)[:40]!r} is not text")
    text = raw.strip()
    try:
        when = (
            datetime.fromisoformat(text)
            if time_format == "iso"
            else datetime.strptime(text, time_format)
        )
    except ValueError:
        raise ValueError(f"time {raw[:40]!r} does not match {time_format!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 0001 east of UTC
        raise ValueError(f"time {raw[:40]!r} is out of range") from None


def parse_value(raw: object) -> float | None:
    """A payload value as a float, None when it is marked missing; ValueError otherwise."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"value {str(raw)[:40]!r} is not a number")
    if isinstance(raw, str) and raw.strip().lower() in MISSING_TEXT:
        return None
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (ValueError, OverflowError):  # OverflowError: a huge int from a JSON payload
        raise ValueError(f"value {str(raw)[:40]!r} is not a number") from None
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"value {raw!r} is not a finite number")
    return value


def _number(raw: object) -> float | None:
    """A positive finite number from a payload field, or None.

    VNDMS repeats a threshold comma-separated ("0.65,0.65") and writes 0 for
    "not set": the first part is taken, and zero or less is no value.
    """
    if isinstance(raw, str):
        raw = raw.split(",")[0]
    try:
        value = parse_value(raw)
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None


def unit_check(
    payload: object, alarm_m: tuple[float | None, ...], scale: float, who: str = "payload"
) -> str | None:
    """Why the payload's alarm levels say its values are in another unit, or None.

    Our alarm levels divided by `scale` are what the payload should say; a
    payload 100 times that sends centimetres where metres are expected (or a
    hundredth: metres where centimetres are). Logs a warning (prefixed `who`)
    when they match neither; the values are kept then.
    """
    if not isinstance(payload, dict):
        return None
    pairs = [
        (theirs, ours / scale)
        for key, ours in zip(ALARM_KEYS, alarm_m, strict=False)
        if ours and (theirs := _number(payload.get(key)))
    ]
    if not pairs:
        return None

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= ALARM_TOLERANCE * abs(b)

    if all(close(theirs, expected) for theirs, expected in pairs):
        return None
    theirs_text = "/".join(f"{t:g}" for t, _ in pairs)
    expected_text = "/".join(f"{e:g}" for _, e in pairs)
    for factor, unit, fix in ((100.0, "centimetres", 0.01), (0.01, "metres", 1.0)):
        if all(close(theirs, expected * factor) for theirs, expected in pairs):
            return (
                f"payload alarm levels {theirs_text} are {factor:g}x the expected "
                f"{expected_text} (alarm_m / scale {scale:g}): the gauge is sending {unit} "
                f"(set scale = {fix:g} if that is intended)"
            )
    logger.warning("%s: payload alarm levels %s do not match alarm_m / scale %s; values kept",
                   who, theirs_text, expected_text)  # fmt: skip
    return None


def station_reference(payload: object) -> dict | None:
    """What a VNDMS payload says of its station: alarm levels, record flood, names."""
    if not isinstance(payload, dict):
        return None
    reference: dict = {}
    alarms = [_number(payload.get(key)) for key in ALARM_KEYS]
    if any(a is not None for a in alarms):
        reference["alarm_m"] = alarms
    if (record := _number(payload.get("gia_tri_lu_lich_su"))) is not None:
        reference["record_m"] = record
        year = str(payload.get("nam_lu_lich_su") or "").strip()
        if year.isdigit() and len(year) == 4:
            reference["record_year"] = int(year)
    for key, name in (("name_vn", "name"), ("river_name", "river")):
        if isinstance(payload.get(key), str) and payload[key].strip():
            reference[name] = payload[key].strip()[:100]
    return reference or None


def _rows(container: object, m: RecordMap, source: str, where: str) -> list[object]:
    """The records of a payload: the list itself, or the parallel arrays zipped into objects."""
    if not m.columns:
        if not isinstance(container, list):
            raise SourceError(
                f"{source}: `records` path {where} leads to {type(container).__name__}, not a list"
            )
        return container
    columns = {m.time_field: None, m.value_field: None}
    if isinstance(container, dict):
        # VNDMS sends each column as one comma-separated string.
        columns = {
            key: value.split(",") if isinstance(value := container.get(key), str) else value
            for key in columns
        }
    if not all(isinstance(column, list) for column in columns.values()):
        raise SourceError(
            f"{source}: `records` path {where} has no `{m.time_field}` and `{m.value_field}` lists"
        )
    length = max(len(column) for column in columns.values())
    return [
        {key: column[i] for key, column in columns.items() if i < len(column)}
        for i in range(length)
    ]


class _Rejected(Exception):
    """One record that cannot be used (internal to parsing)."""

    def __init__(self, reason: str, detail: str, station=None, when=None):
        super().__init__(detail)
        self.reason, self.detail, self.station, self.when = reason, detail, station, when


def _read_record(
    record: object, m: RecordMap, remote_station: str | None, now: datetime | None = None
) -> tuple[str, datetime, float]:
    """(our station, UTC time, raw value) of one record; _Rejected otherwise."""
    if not isinstance(record, dict):
        raise _Rejected("malformed", f"not an object ({type(record).__name__})")
    remote = remote_station
    if m.station_field is not None:
        try:
            remote = _at_path(record, m.station_field)
        except KeyError:
            raise _Rejected("malformed", f"no `{m.station_field}`") from None
        if isinstance(remote, bool) or not isinstance(remote, str | int):
            raise _Rejected("malformed", f"station {remote!r} is not an id")
    station = m.our_station(str(remote))
    if station is None:
        raise _Rejected(
            "unknown_station", f"station {str(remote)[:40]!r} is not mapped to one of ours"
        )
    try:
        when = parse_time(_at_path(record, m.time_field), m.time_format, m.zone, now)
    except KeyError:
        raise _Rejected("malformed", f"no `{m.time_field}`", station) from None
    except ValueError as exc:
        raise _Rejected("malformed", str(exc), station) from None
    try:
        value = parse_value(_at_path(record, m.value_field))
    except KeyError:
        raise _Rejected("malformed", f"no `{m.value_field}`", station, when) from None
    except ValueError as exc:
        raise _Rejected("malformed", str(exc), station, when) from None
    if value is None or any(abs(value - marker) < 1e-9 for marker in m.missing):
        raw = _at_path(record, m.value_field)
        raise _Rejected("missing", f"value {str(raw)[:20]!r} marks a missing value", station, when)
    return station, when, value


def parse_records(
    doc: object,
    m: RecordMap,
    *,
    source: str,
    remote_station: str | None = None,
    issued: datetime | None = None,
    now: datetime | None = None,
) -> FetchResult:
    """Readings of one payload, and a Rejection for each value that cannot be used.

    `remote_station` is the station the request asked for (by URL or form);
    `now` the poll time (VNDMS labels have no year). Raises SourceError (not
    retryable) when the payload has no records at the configured path.
    """
    where = repr(m.records) if m.records else "'' (the document)"
    try:
        container = _at_path(doc, m.records)
    except KeyError as exc:
        raise SourceError(f"{source}: `records` path {where} not found (no {exc})") from None
    rows = _rows(container, m, source, where)
    mismatch: str | None = None
    result = FetchResult()
    if remote_station is not None and (ours := m.our_station(remote_station)):
        mismatch = unit_check(container, m.alarms_m[ours], m.scale, f"{source}: {ours}")
        if mismatch:
            logger.warning("%s: %s: %s; its values are rejected", source, ours, mismatch)
        if (reference := station_reference(container)) is not None:
            result.references[(ours, str(m.variable))] = reference
    label = f"station {remote_station!r} record" if remote_station else "record"
    first_seen: dict[tuple[str, datetime], tuple[int, float]] = {}
    for index, record in enumerate(rows):
        try:
            station, when, raw = _read_record(record, m, remote_station, now)
            if mismatch:
                raise _Rejected("unit_mismatch", mismatch, station, when)
            value = round(raw * m.scale, 6)
            earlier = first_seen.get((station, when))
            if earlier is not None:
                differs = "" if earlier[1] == value else f" with a different value ({earlier[1]:g})"
                raise _Rejected("duplicate", f"same time as record {earlier[0]}{differs}",
                                station, when)  # fmt: skip
        except _Rejected as bad:
            place = f" ({bad.station} {bad.when:%Y-%m-%d %H:%M}Z)" if bad.when else ""
            detail = f"{label} {index}{place}: {bad.detail}"
            result.rejected.append(Rejection(bad.reason, detail, bad.station, bad.when))
            continue
        first_seen[(station, when)] = (index, value)
        result.readings.append(Reading(station, m.variable, when, value, m.kind, issued))
    return result


def _mapping_problems(
    key: str, cfg: HttpJsonSettings, variable: Variable, stations: Mapping[str, Station]
) -> list[str]:
    """Problems of the station mapping: unknown stations, wrong variable, shared targets."""
    problems: list[str] = []
    for remote, ours in cfg.stations.items():
        if ours not in stations:
            problems.append(f"{key}.stations.{remote}: {ours!r} is not a station in geodata")
        elif variable not in stations[ours].measures:
            problems.append(
                f"{key}.stations.{remote}: station {ours!r} does not measure {variable}"
            )
    targets = Counter(cfg.stations.values())
    for ours, count in sorted(targets.items()):
        if count > 1:
            problems.append(f"{key}.stations: {count} remote stations map to {ours!r}")
    return problems


def _request_problems(key: str, cfg: HttpJsonSettings, per_station: bool, form: bool) -> list[str]:
    """Problems of how stations reach the requests: `{station}` in the URL or a form."""
    problems: list[str] = []
    if per_station and not cfg.stations and not form:
        problems.append(
            f"{key}.stations: the url has {STATION_PLACEHOLDER}; list the remote station ids"
        )
    if form and not cfg.stations:
        problems.append(
            f"{key}.stations: preset vndms posts one request per station; map the remote "
            'station ids to ours, e.g. "69716" = "tp_ca_mau"'
        )
    if form and per_station:
        problems.append(
            f"{key}.url: preset vndms posts the station id in a form; use the service "
            f"endpoint without {STATION_PLACEHOLDER} (https://vndms.dmc.gov.vn/home/detailRain)"
        )
    return problems


def _format_problems(key: str, time_format: str, scale: float) -> list[str]:
    """Problems of the time format and the value scale."""
    problems: list[str] = []
    if time_format not in TIME_FORMATS and "%" not in time_format:
        problems.append(
            f"{key}.time_format: {time_format!r} is not iso, epoch_s, epoch_ms, vndms "
            f"or a strptime format"
        )
    if scale == 0:
        problems.append(f"{key}.scale: must not be 0")
    return problems


def _time_zone(key: str, cfg: HttpJsonSettings, problems: list[str]) -> ZoneInfo:
    """The zone of times without an offset; UTC (and a problem) when it is unknown."""
    zone_name = str(_setting(cfg, "time_zone"))
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{key}.time_zone: unknown time zone {zone_name!r}")
        return ZoneInfo("UTC")


def _request_headers(
    key: str, cfg: HttpJsonSettings, environ: Mapping[str, str], form: bool, problems: list[str]
) -> dict[str, str]:
    """Headers of every request: the browser's for a form, the file's, and the auth token."""
    headers = {**(browser_headers(cfg.url) if form else {}), **cfg.headers}
    if cfg.auth_env:
        token = (environ.get(cfg.auth_env) or "").strip()
        if not token:
            problems.append(f"{key}.auth_env: environment variable {cfg.auth_env} is not set")
        else:
            headers[cfg.auth_header] = f"{cfg.auth_scheme} {token}".strip()
    return headers


def _record_map(
    cfg: HttpJsonSettings,
    variable: Variable,
    stations: Mapping[str, Station],
    time_format: str,
    zone: ZoneInfo,
    scale: float,
) -> RecordMap:
    """The checked settings, with the preset applied, as a RecordMap."""
    return RecordMap(
        variable=variable,
        kind=Kind(cfg.kind),
        records=str(_setting(cfg, "records")),
        station_field=_setting(cfg, "station_field"),  # type: ignore[arg-type]
        time_field=str(_setting(cfg, "time_field")),
        time_format=time_format,
        zone=zone,
        value_field=str(_setting(cfg, "value_field")),
        scale=scale,
        missing=tuple(cfg.missing),
        stations=dict(cfg.stations),
        alarms_m={s.id: tuple(s.alarm_m) for s in stations.values() if variable in s.measures},
        columns=bool(PRESETS.get(cfg.preset or "", {}).get("columns", False)),
    )


def _new_session() -> requests.Session:
    """An HTTP session of its own (the service passes a shared one)."""
    import requests

    return requests.Session()


@dataclass
class HttpJsonSource:
    """Readings from a JSON gauge API, mapped by the `[sources.NAME]` settings."""

    name: str
    interval_minutes: int
    stale_after_minutes: int | None
    requests: list[Request]
    record_map: RecordMap
    timeout_s: float
    # repr=False: the headers carry the auth token, which must never reach a log.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    session: requests.Session = field(default_factory=_new_session, repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy, repr=False)

    @classmethod
    def from_settings(
        cls, name: str, cfg: HttpJsonSettings, context: SourceContext
    ) -> HttpJsonSource:
        """Check the mapping against geodata and environment; ConfigError lists every problem."""
        key = f"sources.{name}"
        variable = Variable(cfg.variable)
        stations = context.geodata.stations
        problems = _mapping_problems(key, cfg, variable, stations)
        per_station = STATION_PLACEHOLDER in cfg.url
        form = bool(PRESETS.get(cfg.preset or "", {}).get("form", False))
        problems += _request_problems(key, cfg, per_station, form)
        time_format = str(_setting(cfg, "time_format"))
        scale = float(_setting(cfg, "scale"))  # type: ignore[arg-type]
        problems += _format_problems(key, time_format, scale)
        zone = _time_zone(key, cfg, problems)
        headers = _request_headers(key, cfg, context.environ, form, problems)
        if problems:
            raise ConfigError(problems)
        return cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            stale_after_minutes=cfg.stale_after_minutes,
            requests=build_requests(cfg.url, list(cfg.stations), form),
            record_map=_record_map(cfg, variable, stations, time_format, zone, scale),
            timeout_s=cfg.timeout_s,
            headers=headers,
            session=context.session,
            policy=context.policy,
        )

    def provides(self) -> set[tuple[str, str]]:
        """The mapped stations; unknown ahead of time when there is no mapping."""
        return {(ours, self.record_map.variable) for ours in self.record_map.stations.values()}

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """Whatever the API currently serves (it decides the span); see the module docstring."""
        issued = now.astimezone(UTC) if self.record_map.kind is Kind.FORECAST else None
        result = FetchResult()
        failures: list[tuple[str | None, SourceError]] = []
        for request in self.requests:
            try:
                part = self._fetch_one(request, issued, now)
            except SourceError as exc:
                failures.append((request.remote, exc))
                continue
            result.readings.extend(part.readings)
            result.rejected.extend(part.rejected)
            result.references.update(part.references)
        if failures and len(failures) == len(self.requests):
            if len(failures) == 1:
                raise failures[0][1]
            raise SourceError(
                f"{self.name}: all {len(failures)} requests failed; first: {failures[0][1]}",
                retryable=any(exc.retryable for _, exc in failures),
            )
        for remote, exc in failures:
            logger.warning("%s (other stations still read)", exc)
            station = self.record_map.stations.get(remote) if remote is not None else None
            result.rejected.append(Rejection("fetch_failed", str(exc), station))
        reasons = Counter(r.reason for r in result.rejected)
        logger.info("%s: %d requests, %d rows, rejected %s", self.name, len(self.requests),
                    len(result.readings), dict(reasons) or 0)  # fmt: skip
        return result

    def _fetch_one(self, request: Request, issued: datetime | None, now: datetime) -> FetchResult:
        """One request, fetched and parsed; SourceError for anything wrong with it."""
        doc = get_json(self.session, request.url, name=self.name, headers=self.headers,
                       timeout_s=self.timeout_s, policy=self.policy, form=request.form)  # fmt: skip
        try:
            return parse_records(
                doc, self.record_map, source=self.name, remote_station=request.remote,
                issued=issued, now=now,
            )  # fmt: skip
        except SourceError:
            raise
        except Exception as exc:  # a payload shape nobody foresaw costs only its station
            logger.exception("%s: station %s: unreadable payload", self.name, request.remote)
            raise SourceError(
                f"{self.name}: station {request.remote!r}: unreadable payload "
                f"({type(exc).__name__})"
            ) from None
