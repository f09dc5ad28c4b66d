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

- `preset = "vndms"`: one request per station (`{station}` in the URL), a
  VNDMS-style water-level payload of parallel arrays, local Vietnam time,
  values in cm::

      {"labels": ["16/12/2024 17:00", "16/12/2024 18:00"],
       "value": [105, 107],
       "bao_dong1": 65, "bao_dong2": 75, "bao_dong3": 85}

  `bao_dong1..3` are the station's alarm levels in the payload's unit; they are
  the unit check. If they are within 15 % of our `alarm_m` / `scale` (cm for
  the preset's 0.01) the unit holds; if they are within 15 % of `alarm_m`
  itself the gauge is sending metres, and that station's values are rejected
  as `unit_mismatch` rather than stored 100 times too small.

- `preset = "flat"`: a JSON list of objects, times ISO 8601, values in metres::

      [{"station": "CM01", "time": "2024-12-16T17:00:00+07:00", "value": 1.05}, ...]

Values may be JSON numbers or numeric strings (some gateways quote them);
`null`, NaN and the `missing` markers (such as -9999) are `missing`; anything
else is `malformed`. The adapter does not judge plausibility (spikes, stuck
sensors, limits): validation does that for every source.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from floodwatch.errors import ConfigError, SourceError
from floodwatch.http import RetryPolicy, get_json
from floodwatch.readings import Kind, Reading, Variable
from floodwatch.source_settings import HttpJsonSettings
from floodwatch.sources import FetchResult, Rejection, SourceContext

logger = logging.getLogger(__name__)

STATION_PLACEHOLDER = "{station}"
TIME_FORMATS = ("iso", "epoch_s", "epoch_ms")
# Our alarm levels vs the payload's bao_dong1..3: how close counts as "the same".
ALARM_TOLERANCE = 0.15
ALARM_KEYS = ("bao_dong1", "bao_dong2", "bao_dong3")

PRESETS: dict[str, dict[str, object]] = {
    "vndms": {
        "columns": True,
        "records": "",
        "station_field": None,
        "time_field": "labels",
        "value_field": "value",
        # "16/12/2024 17:00": day first, local Vietnam time, no offset.
        "time_format": "%d/%m/%Y %H:%M",
        "time_zone": "Asia/Ho_Chi_Minh",
        "scale": 0.01,
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


def build_requests(url: str, remote_ids: list[str]) -> list[tuple[str | None, str]]:
    """(remote station id or None, URL) for each request a fetch makes."""
    if STATION_PLACEHOLDER not in url:
        return [(None, url)]
    # str.replace, not format(): other braces in a URL are not ours to fill.
    return [(rid, url.replace(STATION_PLACEHOLDER, quote(rid, safe=""))) for rid in remote_ids]


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


def parse_time(raw: object, time_format: str, zone: ZoneInfo) -> datetime:
    """A payload time as aware UTC; ValueError with the reason otherwise."""
    if time_format in ("epoch_s", "epoch_ms"):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"time {raw!r} is not a number of seconds")
        try:
            seconds = float(raw) / (1000.0 if time_format == "epoch_ms" else 1.0)
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"time {raw!r} is not a {time_format} time") from None
    if not isinstance(raw, str):
        raise ValueError(f"time {raw!r} is not text")
    text = raw.strip()
    try:
        when = (
            datetime.fromisoformat(text)
            if time_format == "iso"
            else datetime.strptime(text, time_format)
        )
    except ValueError:
        raise ValueError(f"time {raw!r} does not match {time_format!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(UTC)


def parse_value(raw: object) -> float | None:
    """A payload value as a float, None when it is marked missing; ValueError otherwise."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"value {raw!r} is not a number")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except ValueError:
        raise ValueError(f"value {raw!r} is not a number") from None
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"value {raw!r} is not a finite number")
    return value


def _number(raw: object) -> float | None:
    """A finite number from a payload field, or None."""
    try:
        value = parse_value(raw)
    except ValueError:
        return None
    return value


def unit_check(
    payload: object, alarm_m: tuple[float | None, ...], scale: float, who: str = "payload"
) -> str | None:
    """Why the payload's alarm levels say its values are in metres, or None when they don't.

    Logs a warning (prefixed `who`) when they match neither unit; the values are kept.
    """
    if not isinstance(payload, dict):
        return None
    pairs = [
        (theirs, ours)
        for key, ours in zip(ALARM_KEYS, alarm_m, strict=False)
        if ours and (theirs := _number(payload.get(key)))
    ]
    if not pairs:
        return None

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= ALARM_TOLERANCE * abs(b)

    if all(close(theirs, ours / scale) for theirs, ours in pairs):
        return None
    theirs_text = "/".join(f"{t:g}" for t, _ in pairs)
    ours_text = "/".join(f"{o:g}" for _, o in pairs)
    if scale != 1 and all(close(theirs, ours) for theirs, ours in pairs):
        return (
            f"payload alarm levels {theirs_text} match our alarm_m {ours_text} in metres, "
            f"but scale {scale:g} expects them ×{1 / scale:g}; the gauge is sending metres "
            f"(set scale = 1.0 if that is intended)"
        )
    logger.warning("%s: payload alarm levels %s match neither alarm_m %s nor ×%g; values kept",
                   who, theirs_text, ours_text, 1 / scale)  # fmt: skip
    return None


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
        columns = {key: container.get(key) for key in columns}
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
    record: object, m: RecordMap, remote_station: str | None
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
        raise _Rejected("unknown_station", f"station {str(remote)!r} is not mapped to one of ours")
    try:
        when = parse_time(_at_path(record, m.time_field), m.time_format, m.zone)
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
        raise _Rejected("missing", f"value {value!r} marks a missing value", station, when)
    return station, when, value


def parse_records(
    doc: object,
    m: RecordMap,
    *,
    source: str,
    remote_station: str | None = None,
    issued: datetime | None = None,
) -> FetchResult:
    """Readings of one payload, and a Rejection for each value that cannot be used.

    `remote_station` is the station the request asked for (when the URL names
    it). Raises SourceError (not retryable) when the payload has no records at
    the configured path.
    """
    where = repr(m.records) if m.records else "'' (the document)"
    try:
        container = _at_path(doc, m.records)
    except KeyError as exc:
        raise SourceError(f"{source}: `records` path {where} not found (no {exc})") from None
    rows = _rows(container, m, source, where)
    mismatch: str | None = None
    if remote_station is not None and (ours := m.our_station(remote_station)):
        mismatch = unit_check(container, m.alarms_m[ours], m.scale, f"{source}: {ours}")
        if mismatch:
            logger.warning("%s: %s: %s; its values are rejected", source, ours, mismatch)
    label = f"station {remote_station!r} record" if remote_station else "record"
    result = FetchResult()
    first_seen: dict[tuple[str, datetime], tuple[int, float]] = {}
    for index, record in enumerate(rows):
        try:
            station, when, raw = _read_record(record, m, remote_station)
            if mismatch:
                raise _Rejected("unit_mismatch", mismatch, station, when)
            value = round(raw * m.scale, 6)
            earlier = first_seen.get((station, when))
            if earlier is not None:
                differs = "" if earlier[1] == value else f" with a different value ({earlier[1]:g})"
                raise _Rejected("duplicate", f"same time as record {earlier[0]}{differs}",
                                station, when)  # fmt: skip
        except _Rejected as bad:
            detail = f"{label} {index}: {bad.detail}"
            result.rejected.append(Rejection(bad.reason, detail, bad.station, bad.when))
            continue
        first_seen[(station, when)] = (index, value)
        result.readings.append(Reading(station, m.variable, when, value, m.kind, issued))
    return result


@dataclass
class HttpJsonSource:
    """Readings from a JSON gauge API, mapped by the `[sources.NAME]` settings."""

    name: str
    interval_minutes: int
    stale_after_minutes: int | None
    request_urls: list[tuple[str | None, str]]
    record_map: RecordMap
    timeout_s: float
    # repr=False: the headers carry the auth token, which must never reach a log.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy, repr=False)

    @classmethod
    def from_settings(
        cls, name: str, cfg: HttpJsonSettings, context: SourceContext
    ) -> HttpJsonSource:
        """Check the mapping against geodata and environment; ConfigError lists every problem."""
        key = f"sources.{name}"
        problems: list[str] = []
        variable = Variable(cfg.variable)
        stations = context.geodata.stations
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
        per_station = STATION_PLACEHOLDER in cfg.url
        if per_station and not cfg.stations:
            problems.append(
                f"{key}.stations: the url has {STATION_PLACEHOLDER}; list the remote station ids"
            )
        if cfg.preset == "vndms" and not per_station:
            problems.append(f"{key}.url: preset vndms needs {STATION_PLACEHOLDER} in the url")
        time_format = str(_setting(cfg, "time_format"))
        if time_format not in TIME_FORMATS and "%" not in time_format:
            problems.append(
                f"{key}.time_format: {time_format!r} is not iso, epoch_s, epoch_ms "
                f"or a strptime format"
            )
        scale = float(_setting(cfg, "scale"))  # type: ignore[arg-type]
        if scale == 0:
            problems.append(f"{key}.scale: must not be 0")
        zone_name = str(_setting(cfg, "time_zone"))
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{key}.time_zone: unknown time zone {zone_name!r}")
            zone = ZoneInfo("UTC")
        headers = dict(cfg.headers)
        if cfg.auth_env:
            token = (context.environ.get(cfg.auth_env) or "").strip()
            if not token:
                problems.append(f"{key}.auth_env: environment variable {cfg.auth_env} is not set")
            else:
                headers[cfg.auth_header] = f"{cfg.auth_scheme} {token}".strip()
        if problems:
            raise ConfigError(problems)
        record_map = RecordMap(
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
        return cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            stale_after_minutes=cfg.stale_after_minutes,
            request_urls=build_requests(cfg.url, list(cfg.stations)),
            record_map=record_map,
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
        for remote, url in self.request_urls:
            try:
                doc = get_json(self.session, url, name=self.name, headers=self.headers,
                               timeout_s=self.timeout_s, policy=self.policy)  # fmt: skip
                part = parse_records(
                    doc, self.record_map, source=self.name, remote_station=remote, issued=issued
                )
            except SourceError as exc:
                failures.append((remote, exc))
                continue
            result.readings.extend(part.readings)
            result.rejected.extend(part.rejected)
        if failures and len(failures) == len(self.request_urls):
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
        logger.info("%s: %d requests, %d rows, rejected %s", self.name, len(self.request_urls),
                    len(result.readings), dict(reasons) or 0)  # fmt: skip
        return result
