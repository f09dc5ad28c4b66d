"""Open-Meteo rain and sea-level sources: recorded payloads through a real client and server."""

from __future__ import annotations

import json
import logging
import math
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.config import parse_settings
from floodwatch.core.geo import load_geodata
from floodwatch.core.readings import Kind, Variable
from floodwatch.errors import ConfigError, InputError, SourceError
from floodwatch.sources import SourceContext, build_sources
from floodwatch.sources._http import RetryPolicy
from floodwatch.sources.open_meteo import parse_forecast
from floodwatch.sources.open_meteo_marine import (
    MarinePoint,
    build_period_params,
    fit_transfer,
    parse_sea_level,
)
from tests.fakeserver import Reply, Request

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "open_meteo"
NOW = datetime(2024, 12, 16, 10, 30, tzinfo=UTC)
ISSUED = datetime(2024, 12, 16, 10, tzinfo=UTC)
RAIN_STATIONS = ["tp_ca_mau", "song_doc", "gia_rai"]  # the shipped stations measuring rainfall
FORECAST = "/v1/forecast"
MARINE = "/v1/marine"


def at(hour: int, day: int = 16) -> datetime:
    """A UTC time on 2024-12-<day>."""
    return datetime(2024, 12, day, hour, tzinfo=UTC)


def payload(name: str) -> str:
    """A recorded reply, as text."""
    return (DATA / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def geodata():
    """The shipped sample stations and segments."""
    return load_geodata(ROOT / "geodata/segments.geojson", ROOT / "geodata/stations.geojson")


@pytest.fixture
def waits() -> list[float]:
    """Sleeps the retry policy asked for (instead of sleeping)."""
    return []


@pytest.fixture
def make_source(geodata, waits):
    """Build one configured source through the registry, with a recording retry policy."""

    def make(table: dict, environ: dict | None = None):
        settings = parse_settings({"sources": {"om": table}}, "<test>")
        policy = RetryPolicy(retries=2, backoff_s=1.0, sleep=waits.append)
        context = SourceContext(settings, geodata, requests.Session(), policy, environ or {})
        (source,) = build_sources(settings, geodata, context)
        return source

    return make


@pytest.fixture
def rain(fake_server, make_source):
    """A rain source on the fake server; keyword arguments are its settings."""

    def make(environ: dict | None = None, **cfg):
        table = {"type": "open_meteo_rain", "base_url": fake_server.url + FORECAST, **cfg}
        return make_source(table, environ)

    return make


def by_station(readings) -> dict[str, list]:
    """Readings grouped by station, in time order."""
    grouped: dict[str, list] = {}
    for r in sorted(readings, key=lambda r: (r.station, r.time)):
        grouped.setdefault(r.station, []).append(r)
    return grouped


# --- rain: replies -----------------------------------------------------------------------


def test_array_reply_splits_observed_and_forecast_at_now(fake_server, rain):
    fake_server.routes[FORECAST] = [Reply.json(payload("forecast_array.json"))]
    source = rain()
    assert source.provides() == {(s, Variable.RAINFALL) for s in RAIN_STATIONS}
    result = source.fetch(NOW - timedelta(hours=12), NOW + timedelta(hours=72), NOW)

    (request,) = fake_server.requests
    assert {k: v[0] for k, v in request.query.items()} == {
        "latitude": "9.177,9.04,9.24",
        "longitude": "105.15,104.83,105.45",
        "hourly": "precipitation",
        "past_days": "2",
        "forecast_days": "3",
        "timezone": "GMT",
    }
    grouped = by_station(result.readings)
    assert sorted(grouped) == sorted(RAIN_STATIONS)
    city = grouped["tp_ca_mau"]
    assert len(city) == 24 and city[0].time == at(0) and city[-1].time == at(23)
    observed = [r for r in city if r.kind is Kind.OBSERVED]
    forecast = [r for r in city if r.kind is Kind.FORECAST]
    assert [r.time for r in observed] == [at(h) for h in range(11)]  # 10:00 <= now (10:30)
    assert all(r.issued == r.time for r in observed)
    assert all(r.issued == ISSUED for r in forecast) and forecast[0].time == at(11)
    assert {r.time: r.value for r in city}[at(16)] == 12.7
    assert all(r.variable is Variable.RAINFALL for r in result.readings)
    # song_doc has two nulls (one past, one future): counted, the rest still arrive.
    assert len(grouped["song_doc"]) == 22
    assert [(j.reason, j.station, j.time) for j in result.rejected] == [
        ("missing", "song_doc", at(5)),
        ("missing", "song_doc", at(20)),
    ]


def test_single_object_reply_with_local_times_is_coerced_to_utc(fake_server, rain):
    # forecast_single.json says utc_offset_seconds=25200 (Asia/Bangkok): its
    # "2024-12-16T00:00" is 2024-12-15T17:00 UTC.
    fake_server.routes[FORECAST] = [Reply.json(payload("forecast_single.json"))]
    result = rain(stations=["tp_ca_mau"]).fetch(NOW, NOW, NOW)
    assert fake_server.requests[0].query["latitude"] == ["9.177"]
    times = [r.time for r in result.readings]
    assert times[0] == at(17, day=15) and times[-1] == at(16)
    values = {r.time: (r.value, r.kind) for r in result.readings}
    assert values[at(10)] == (2.5, Kind.OBSERVED)  # local 17:00
    assert values[at(11)] == (6.0, Kind.FORECAST)  # local 18:00
    assert result.rejected == []


def test_nan_and_strings_are_malformed_and_the_rest_arrives(fake_server, rain):
    text = payload("forecast_array.json").replace("12.7", "NaN").replace("8.4", '"8,4"')
    fake_server.routes[FORECAST] = [Reply.json(text)]
    result = rain().fetch(NOW, NOW, NOW)
    reasons = sorted((j.reason, j.station, j.time) for j in result.rejected)
    assert reasons == [
        ("malformed", "tp_ca_mau", at(15)),
        ("malformed", "tp_ca_mau", at(16)),
        ("missing", "song_doc", at(5)),
        ("missing", "song_doc", at(20)),
    ]
    assert len(result.readings) == 72 - 4
    assert "'8,4'" in next(j.detail for j in result.rejected if j.time == at(15))


def test_wrong_unit_rejects_every_value_of_that_point(fake_server, rain):
    text = payload("forecast_array.json").replace(
        '"precipitation": "mm"', '"precipitation": "inch"', 1
    )
    fake_server.routes[FORECAST] = [Reply.json(text)]
    result = rain().fetch(NOW, NOW, NOW)
    mismatched = [j for j in result.rejected if j.reason == "unit_mismatch"]
    assert len(mismatched) == 24 and {j.station for j in mismatched} == {"tp_ca_mau"}
    assert "'inch'" in mismatched[0].detail
    assert "tp_ca_mau" not in by_station(result.readings)
    assert len(result.readings) == 48 - 2


def test_empty_time_arrays_give_no_readings(fake_server, rain):
    doc = json.loads(payload("forecast_single.json"))
    doc["hourly"] = {"time": [], "precipitation": []}
    fake_server.routes[FORECAST] = [Reply.json(json.dumps(doc))]
    result = rain(stations=["tp_ca_mau"]).fetch(NOW, NOW, NOW)
    assert result.readings == [] and result.rejected == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d[0].pop("hourly"), "no `hourly` for tp_ca_mau"),
        (lambda d: d[1]["hourly"]["precipitation"].pop(), "24 times but 23 values for song_doc"),
        (lambda d: d.pop(), "2 locations for 3 points"),
        (lambda d: d[2]["hourly"].pop("precipitation"), "no `hourly.precipitation` for gia_rai"),
        (lambda d: d[0]["hourly"]["time"].__setitem__(3, "yesterday"), "'yesterday' is not ISO"),
    ],
)
def test_replies_of_the_wrong_shape_fail_the_poll(fake_server, rain, waits, edit, message):
    doc = json.loads(payload("forecast_array.json"))
    edit(doc)
    fake_server.routes[FORECAST] = [Reply.json(json.dumps(doc))]
    with pytest.raises(SourceError, match=f"^om: unexpected reply: .*{message}") as info:
        rain().fetch(NOW, NOW, NOW)
    assert not info.value.retryable and waits == []


def test_error_object_in_a_200_body_names_the_reason(fake_server, rain):
    fake_server.routes[FORECAST] = [Reply.json(payload("error_400.json"))]
    with pytest.raises(SourceError, match="^om: Open-Meteo error: Cannot initialize") as info:
        rain().fetch(NOW, NOW, NOW)
    assert not info.value.retryable


# --- rain: HTTP failures -----------------------------------------------------------------


def test_400_with_error_body_is_one_clear_error_not_retried(fake_server, rain, waits):
    fake_server.routes[FORECAST] = [Reply.json(payload("error_400.json"), status=400)]
    with pytest.raises(SourceError) as info:
        rain().fetch(NOW, NOW, NOW)
    assert str(info.value) == (
        "om: /v1/forecast: HTTP 400: Cannot initialize WeatherVariable from invalid String "
        "value precipitaton for key hourly"
    ).replace("/v1", fake_server.url + "/v1")
    assert not info.value.retryable and waits == [] and len(fake_server.requests) == 1


def test_429_waits_as_told_then_succeeds(fake_server, rain, waits, caplog):
    limited = Reply.json(payload("error_429.json"), status=429)
    limited.headers["Retry-After"] = "7"
    fake_server.routes[FORECAST] = [limited, Reply.json(payload("forecast_array.json"))]
    with caplog.at_level(logging.WARNING, logger="floodwatch"):
        result = rain().fetch(NOW, NOW, NOW)
    assert waits == [7.0] and len(result.readings) == 70
    assert "Minutely API request limit exceeded" in caplog.text


def test_500_then_success(fake_server, rain, waits):
    fake_server.routes[FORECAST] = [Reply(500, "boom"), Reply.json(payload("forecast_array.json"))]
    assert len(rain().fetch(NOW, NOW, NOW).readings) == 70
    assert waits == [1.0] and len(fake_server.requests) == 2


def test_connection_refused_is_retryable(closed_port, make_source, waits):
    source = make_source(
        {"type": "open_meteo_rain", "base_url": f"http://127.0.0.1:{closed_port}/v1/forecast"}
    )
    with pytest.raises(SourceError, match=r"^om: .*cannot connect .*gave up after 3 tries") as info:
        source.fetch(NOW, NOW, NOW)
    assert info.value.retryable and waits == [1.0, 2.0]


def test_truncated_json_and_html_pages_fail_cleanly(fake_server, rain, waits):
    text = payload("forecast_array.json")
    fake_server.routes[FORECAST] = [Reply.json(text[: len(text) // 2])]
    with pytest.raises(SourceError, match=r"^om: .* sent malformed JSON \(application/json"):
        rain().fetch(NOW, NOW, NOW)
    fake_server.routes[FORECAST] = [Reply.json(text, truncate=True)]
    with pytest.raises(SourceError, match="^om: "):
        rain().fetch(NOW, NOW, NOW)
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    fake_server.routes[FORECAST] = [Reply(200, page, {"Content-Type": "text/html"})]
    with pytest.raises(SourceError, match=r"^om: .* sent malformed JSON \(text/html"):
        rain().fetch(NOW, NOW, NOW)
    fake_server.routes[FORECAST] = [Reply(502, page, {"Content-Type": "text/html"})]
    with pytest.raises(SourceError, match="HTTP 502: an HTML page .*gave up") as info:
        rain().fetch(NOW, NOW, NOW)
    assert info.value.retryable


# --- rain: requests ----------------------------------------------------------------------


def test_points_are_chunked_by_max_points_per_request(fake_server, rain):
    locations = json.loads(payload("forecast_array.json"))

    def reply(request: Request) -> Reply:
        n = len(request.query["latitude"][0].split(","))
        first = 0 if n == 2 else 2
        part = locations[first : first + n]
        for item in part:
            item.pop("location_id", None)
        return Reply.json(json.dumps(part if n > 1 else part[0]))

    fake_server.routes[FORECAST] = reply
    result = rain(max_points_per_request=2, models="best_match").fetch(NOW, NOW, NOW)
    assert [r.query["latitude"][0] for r in fake_server.requests] == ["9.177,9.04", "9.24"]
    assert all(r.query["models"] == ["best_match"] for r in fake_server.requests)
    assert sorted(by_station(result.readings)) == sorted(RAIN_STATIONS)
    assert len(result.readings) == 70


def test_array_is_reordered_by_location_id(fake_server, rain):
    locations = json.loads(payload("forecast_array.json"))
    fake_server.routes[FORECAST] = [Reply.json(json.dumps(locations[::-1]))]
    result = rain().fetch(NOW, NOW, NOW)
    assert {r.time: r.value for r in by_station(result.readings)["tp_ca_mau"]}[at(16)] == 12.7


def test_apikey_is_sent_but_never_logged(fake_server, rain, caplog):
    secret = "om-k3y-0f-th3-pr0v1nc3"
    fake_server.routes[FORECAST] = [Reply(503, "busy"), Reply.json(payload("forecast_array.json"))]
    with caplog.at_level(logging.DEBUG, logger="floodwatch"):
        source = rain(environ={"OPEN_METEO_KEY": secret}, apikey_env="OPEN_METEO_KEY")
        source.fetch(NOW, NOW, NOW)
    assert [r.query["apikey"] for r in fake_server.requests] == [[secret], [secret]]
    assert "retry 1/2" in caplog.text and "503" in caplog.text
    assert secret not in caplog.text and secret not in repr(source)


def test_apikey_never_reaches_any_log_even_at_debug(fake_server, rain, caplog):
    secret = "om-k3y-0f-th3-pr0v1nc3"
    fake_server.routes[FORECAST] = [Reply.json(payload("forecast_array.json"))]
    with caplog.at_level(logging.DEBUG):
        rain(environ={"OPEN_METEO_KEY": secret}, apikey_env="OPEN_METEO_KEY").fetch(NOW, NOW, NOW)
    assert secret not in caplog.text


def test_config_problems_are_one_line_each(rain):
    with pytest.raises(ConfigError) as info:
        rain(stations=["tp_ca_mau", "xom_moi", "ganh_hao"])
    assert info.value.problems == [
        "sources.om.stations: unknown station 'xom_moi'",
        "sources.om.stations: station 'ganh_hao' does not measure rainfall",
    ]
    with pytest.raises(ConfigError) as info:
        rain(apikey_env="OPEN_METEO_KEY")
    assert info.value.problems == [
        "sources.om.apikey_env: environment variable OPEN_METEO_KEY is not set"
    ]


# --- sea level ---------------------------------------------------------------------------

SEA_POINTS = {
    "ganh_hao": {"lat": 8.96, "lon": 105.46, "offset_m": 0.25},
    "song_doc": {"lat": 9.04, "lon": 104.71, "offset_m": 0.1, "gain": 0.8, "lag_minutes": 90},
}


@pytest.fixture
def sea(fake_server, make_source):
    """A sea-level source on the fake server with SEA_POINTS."""

    def make(stations: dict = SEA_POINTS, **cfg):
        table = {"type": "open_meteo_sea_level", "base_url": fake_server.url + MARINE,
                 "stations": stations, **cfg}  # fmt: skip
        return make_source(table)

    return make


def test_sea_level_transfer_offset_gain_and_lag(fake_server, sea):
    fake_server.routes[MARINE] = [Reply.json(payload("marine.json"))]
    source = sea()
    assert source.provides() == {("ganh_hao", "water_level"), ("song_doc", "water_level")}
    result = source.fetch(NOW, NOW, NOW)
    query = {k: v[0] for k, v in fake_server.requests[0].query.items()}
    assert query == {
        "latitude": "8.96,9.04",
        "longitude": "105.46,104.71",
        "hourly": "sea_level_height_msl",
        "past_days": "1",
        "forecast_days": "3",
        "timezone": "GMT",
        "cell_selection": "sea",
    }
    raw = [loc["hourly"]["sea_level_height_msl"] for loc in json.loads(payload("marine.json"))]
    grouped = by_station(result.readings)
    mouth, gulf = grouped["ganh_hao"], grouped["song_doc"]
    assert [r.time for r in mouth] == [at(h) for h in range(24)]
    assert [r.value for r in mouth] == pytest.approx([0.25 + v for v in raw[0]])
    # song_doc lags its sea point by 90 minutes, damped by 0.8.
    assert gulf[0].time == at(1) + timedelta(minutes=30)
    assert [r.value for r in gulf] == pytest.approx([0.1 + 0.8 * v for v in raw[1]])
    assert {(r.kind, r.issued, r.variable) for r in result.readings} == {
        (Kind.FORECAST, ISSUED, Variable.WATER_LEVEL)
    }
    assert result.rejected == []


def test_sea_level_units_nulls_and_config(fake_server, sea):
    text = payload("marine.json").replace(
        '"sea_level_height_msl": "m"', '"sea_level_height_msl": "ft"', 1
    )
    doc = json.loads(text)
    doc[1]["hourly"]["sea_level_height_msl"][5] = None
    points = {k: MarinePoint(**v) for k, v in SEA_POINTS.items()}
    result = parse_sea_level(doc, points, NOW, "sea")
    assert sorted({j.reason for j in result.rejected}) == ["missing", "unit_mismatch"]
    assert len(result.rejected) == 25 and len(result.readings) == 23
    with pytest.raises(ConfigError) as info:
        sea({"xom_moi": {"lat": 9, "lon": 105}, "gia_rai": {"lat": 9.2, "lon": 105.5}})
    assert info.value.problems == [
        "sources.om.stations: unknown station 'xom_moi'",
        "sources.om.stations: station 'gia_rai' does not measure water_level",
    ]


def synthetic_tide(hours: np.ndarray) -> np.ndarray:
    """A mixed semi-diurnal sea level (m) with a spring-neap beat."""
    return (
        0.9 * np.cos(2 * np.pi * hours / 12.42)
        + 0.3 * np.cos(2 * np.pi * hours / 12.0 + 1.0)
        + 0.5 * np.cos(2 * np.pi * hours / 23.93 + 0.4)
    )


def synthetic_pair(offset_m: float, gain: float, lag_minutes: int, days: int = 20, seed: int = 5):
    """Hourly model times/levels and hourly observations transferred from them (+1 cm noise)."""
    start = datetime(2024, 12, 1, tzinfo=UTC)
    model_hours = np.arange(-24, days * 24 + 24, dtype=float)
    obs_hours = np.arange(0, days * 24, dtype=float)
    rng = np.random.default_rng(seed)
    obs = offset_m + gain * synthetic_tide(obs_hours - lag_minutes / 60)
    obs += rng.normal(0, 0.01, obs.size)
    model_times = [start + timedelta(hours=float(h)) for h in model_hours]
    obs_times = [start + timedelta(hours=float(h)) for h in obs_hours]
    return obs_times, obs, model_times, synthetic_tide(model_hours)


def test_fit_transfer_recovers_offset_gain_and_lag():
    obs_times, obs, model_times, model = synthetic_pair(0.42, 0.63, 100)
    fit = fit_transfer(obs_times, obs, model_times, model)
    assert abs(fit.offset_m - 0.42) < 0.01
    assert abs(fit.gain - 0.63) < 0.02
    assert abs(fit.lag_minutes - 100) <= 10
    assert fit.rms_m < 0.02 and fit.n >= 470
    naive = (
        [t.replace(tzinfo=None) for t in obs_times],
        [t.replace(tzinfo=None) for t in model_times],
    )
    fit64 = fit_transfer(np.array(naive[0], dtype="datetime64[s]"), obs,
                         np.array(naive[1], dtype="datetime64[s]"), model)  # fmt: skip
    assert fit64 == fit


def test_fit_transfer_needs_24_overlapping_points():
    obs_times, obs, model_times, model = synthetic_pair(0.4, 0.6, 60, days=1)
    with pytest.raises(InputError, match=r"^only \d+ observations overlap .*need 24"):
        fit_transfer(obs_times[:20], obs[:20], model_times, model)
    late = [t + timedelta(days=30) for t in obs_times]
    with pytest.raises(InputError, match="only 0 observations"):
        fit_transfer(late, obs, model_times, model)


def test_period_params_ask_for_whole_utc_days():
    point = MarinePoint(lat=8.96, lon=105.46)
    assert build_period_params(point, date(2024, 12, 1), date(2024, 12, 20), "k") == {
        "latitude": "8.96",
        "longitude": "105.46",
        "hourly": "sea_level_height_msl",
        "timezone": "GMT",
        "cell_selection": "sea",
        "start_date": "2024-12-01",
        "end_date": "2024-12-20",
        "apikey": "k",
    }


# --- tide calibrate ----------------------------------------------------------------------


def write_readings(path: Path, station: str, times, values) -> Path:
    """A readings CSV (DESIGN.md columns) with times in Vietnam's offset."""
    lines = ["time,station,variable,value"]
    for when, value in zip(times, values, strict=True):
        local = when.astimezone(UTC) + timedelta(hours=7)
        lines.append(f"{local:%Y-%m-%dT%H:%M}+07:00,{station},water_level,{value:.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tide_calibrate_with_a_model_csv(project, tmp_path):
    obs_times, obs, model_times, model = synthetic_pair(0.35, 0.55, 90)
    obs_csv = write_readings(tmp_path / "obs.csv", "tp_ca_mau", obs_times, obs)
    model_csv = write_readings(tmp_path / "model.csv", "sea_point", model_times, model)
    result = CliRunner().invoke(main, ["--config", str(project), "tide", "calibrate", "tp_ca_mau",
                                       str(obs_csv), "--model", str(model_csv)])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "lag_minutes  90" in out and "n            480" in out
    assert "[sources.sea_level.stations.tp_ca_mau]" in out
    snippet = tomllib.loads(out[out.index("[sources.") :])
    point = snippet["sources"]["sea_level"]["stations"]["tp_ca_mau"]
    assert point["offset_m"] == pytest.approx(0.35, abs=0.01)
    assert point["gain"] == pytest.approx(0.55, abs=0.02)
    assert point["lag_minutes"] == 90
    assert MarinePoint(**point).lat == 9.177  # pastes as a valid point


def test_tide_calibrate_fetches_the_configured_point(project, tmp_path, fake_server):
    obs_times, obs, model_times, model = synthetic_pair(0.2, 0.7, 120, days=5)
    obs_csv = write_readings(tmp_path / "obs.csv", "tp_ca_mau", obs_times, obs)
    with project.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[sources.bien]\ntype = "open_meteo_sea_level"\n'
                     f'base_url = "{fake_server.url}{MARINE}"\n'
                     "[sources.bien.stations.tp_ca_mau]\nlat = 8.96\nlon = 105.46\n")  # fmt: skip

    def reply(request: Request) -> Reply:
        first = datetime.fromisoformat(request.query["start_date"][0]).replace(tzinfo=UTC)
        last = datetime.fromisoformat(request.query["end_date"][0]).replace(tzinfo=UTC)
        hours = [first + timedelta(hours=h) for h in range(int((last - first).days + 1) * 24)]
        level = dict(zip(model_times, model.round(3).tolist(), strict=True))
        doc = {"latitude": 8.958336, "longitude": 105.45834, "utc_offset_seconds": 0,
               "hourly_units": {"time": "iso8601", "sea_level_height_msl": "m"},
               "hourly": {"time": [f"{t:%Y-%m-%dT%H:%M}" for t in hours],
                          "sea_level_height_msl": [level.get(t) for t in hours]}}  # fmt: skip
        return Reply.json(json.dumps(doc))

    fake_server.routes[MARINE] = reply
    result = CliRunner().invoke(
        main, ["--config", str(project), "tide", "calibrate", "tp_ca_mau", str(obs_csv)]
    )
    assert result.exit_code == 0, result.output
    (request,) = fake_server.requests
    # Observations start at 07:00 local on 1 Dec = 00:00 UTC; whole UTC days are asked.
    assert request.query["start_date"] == ["2024-12-01"]
    assert request.query["end_date"] == ["2024-12-05"]
    assert "lag_minutes  120" in result.stdout
    assert "[sources.bien.stations.tp_ca_mau]\nlat = 8.96\nlon = 105.46\n" in result.stdout


def test_tide_calibrate_errors_are_one_line(project, tmp_path):
    obs_times, obs, *_ = synthetic_pair(0.2, 0.7, 120, days=2)
    obs_csv = write_readings(tmp_path / "obs.csv", "tp_ca_mau", obs_times, obs)
    runner = CliRunner()
    result = runner.invoke(
        main, ["--config", str(project), "tide", "calibrate", "tp_ca_mau", str(obs_csv)]
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: no open_meteo_sea_level source has a point for 'tp_ca_mau'; add one to the "
        "config or pass --model MODEL.csv"
    ]
    far = write_readings(tmp_path / "far.csv", "x", [at(0, day=1) + timedelta(days=60)] * 1, [0.1])
    result = runner.invoke(main, ["--config", str(project), "tide", "calibrate", "tp_ca_mau",
                                  str(obs_csv), "--model", str(far)])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: only 0 observations overlap the modelled sea level (need 24)"
    ]
    result = runner.invoke(main, ["tide", "calibrate", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


# --- parsing speed -----------------------------------------------------------------------


def test_parse_200_points_by_240_hours_is_fast():
    import time

    hours = [f"2024-12-{14 + h // 24:02d}T{h % 24:02d}:00" for h in range(240)]
    one = {"utc_offset_seconds": 0, "hourly_units": {"time": "iso8601", "precipitation": "mm"},
           "hourly": {"time": hours, "precipitation": [0.1 * (h % 7) for h in range(240)]},
           }  # fmt: skip
    text = json.dumps([{"location_id": i, **one} for i in range(200)])
    started = time.perf_counter()
    result = parse_forecast(json.loads(text), [f"p{i}" for i in range(200)], NOW)
    elapsed = time.perf_counter() - started
    assert len(result.readings) == 48_000
    assert elapsed < 1.0  # target 0.5 s; slack for slow CI machines


# --- live (deselected by default) --------------------------------------------------------


@pytest.mark.live
def test_live_open_meteo_forecast_and_marine(make_source):
    now = datetime.now(UTC)
    rain = make_source({"type": "open_meteo_rain", "stations": ["tp_ca_mau"],
                        "past_days": 1, "forecast_days": 2})  # fmt: skip
    result = rain.fetch(now, now, now)
    kinds = {r.kind for r in result.readings}
    assert len(result.readings) + len(result.rejected) == 72 and kinds == {"observed", "forecast"}
    assert all(r.value >= 0 and r.time.minute == 0 for r in result.readings)
    sea = make_source({"type": "open_meteo_sea_level", "past_days": 1, "forecast_days": 2,
                       "stations": {"ganh_hao": {"lat": 8.96, "lon": 105.46}}})  # fmt: skip
    result = sea.fetch(now, now, now)
    assert len(result.readings) == 72
    assert all(-4 < r.value < 4 and not math.isnan(r.value) for r in result.readings)
