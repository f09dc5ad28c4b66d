"""The HTTP JSON gauge adapter against a real local server serving recorded payloads."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests

from floodwatch.config import parse_settings
from floodwatch.errors import ConfigError, SourceError
from floodwatch.geo import load_geodata
from floodwatch.http import RetryPolicy
from floodwatch.readings import Kind, Variable
from floodwatch.sources import SourceContext
from floodwatch.sources.http_json import HttpJsonSource, parse_records
from tests.conftest import DATA, ROOT
from tests.fakeserver import Reply

PAYLOADS = DATA / "http_json"
NOW = datetime(2024, 12, 16, 16, 0, tzinfo=UTC)
START, END = datetime(2024, 12, 15, tzinfo=UTC), datetime(2024, 12, 19, tzinfo=UTC)
TOKEN = "s3cret-gauge-token-42"


@pytest.fixture(scope="module")
def geodata():
    """The shipped stations and segments."""
    return load_geodata(ROOT / "geodata/segments.geojson", ROOT / "geodata/stations.geojson")


def payload(name: str) -> Reply:
    """A recorded payload as a JSON reply."""
    return Reply.json((PAYLOADS / name).read_text(encoding="utf-8"))


def make_source(tmp_path, geodata, source: dict, *, environ=None, waits=None) -> HttpJsonSource:
    """An HttpJsonSource built the way the service builds it, from a parsed config."""
    settings = parse_settings(
        {
            "storage": {"database_url": "sqlite:///x.db"},
            "geodata": {
                "segments": str(ROOT / "geodata/segments.geojson"),
                "stations": str(ROOT / "geodata/stations.geojson"),
            },
            "units": [{"id": "so_xay_dung", "name": "Sở Xây dựng"}],
            "sources": {"gauges": {"type": "http_json", **source}},
        },
        path=tmp_path / "floodwatch.toml",
    )
    policy = RetryPolicy(
        retries=2, backoff_s=1.0, sleep=(waits if waits is not None else []).append
    )
    context = SourceContext(settings, geodata, requests.Session(), policy, environ or {})
    return HttpJsonSource.from_settings("gauges", settings.sources["gauges"], context)


def vndms(fake_server, tmp_path, geodata, stations: dict[str, str], **kw) -> HttpJsonSource:
    """A source on the vndms preset, one route per remote station."""
    url = fake_server.url + "/api/mucnuoc/{station}"
    return make_source(tmp_path, geodata, {"url": url, "preset": "vndms", "stations": stations},
                       **kw)  # fmt: skip


def by_station(readings) -> dict[str, list[tuple[str, float]]]:
    """{station: [(UTC ISO time, value), ...]} of some readings."""
    out: dict[str, list[tuple[str, float]]] = {}
    for r in readings:
        out.setdefault(r.station, []).append((r.time.isoformat(), r.value))
    return out


def test_vndms_preset_scales_cm_to_m_and_reads_local_vietnam_time(fake_server, tmp_path, geodata):
    fake_server.routes["/api/mucnuoc/tpcm"] = [payload("vndms_tp_ca_mau.json")]
    fake_server.routes["/api/mucnuoc/songdoc"] = [payload("vndms_song_doc_stuck_and_spike.json")]
    source = vndms(fake_server, tmp_path, geodata, {"tpcm": "tp_ca_mau", "songdoc": "song_doc"})
    assert source.provides() == {("tp_ca_mau", "water_level"), ("song_doc", "water_level")}
    assert (source.interval_minutes, source.stale_after_minutes) == (15, 60)

    result = source.fetch(START, END, NOW)

    assert result.rejected == []
    got = by_station(result.readings)
    # "16/12/2024 17:00" is Vietnam time (UTC+7): 10:00 UTC; 105 cm is 1.05 m.
    assert got["tp_ca_mau"][:2] == [("2024-12-16T10:00:00+00:00", 1.05),
                                    ("2024-12-16T11:00:00+00:00", 1.07)]  # fmt: skip
    assert len(got["tp_ca_mau"]) == 6
    # A stuck sensor and a spike are validation's business: the adapter passes them on.
    assert [v for _, v in got["song_doc"]] == [0.92] * 6 + [2.4, 0.93]
    assert got["song_doc"][-1][0] == "2024-12-16T17:00:00+00:00"  # 17/12 00:00 local
    assert all(r.variable is Variable.WATER_LEVEL and r.kind is Kind.OBSERVED
               and r.issued is None and r.time.tzinfo is UTC for r in result.readings)  # fmt: skip
    assert sorted(r.path for r in fake_server.requests) == ["/api/mucnuoc/songdoc",
                                                            "/api/mucnuoc/tpcm"]  # fmt: skip


def test_flat_preset_maps_stations_and_accounts_for_every_record(fake_server, tmp_path, geodata):
    fake_server.routes["/obs"] = [payload("flat.json")]
    source = make_source(tmp_path, geodata, {
        "url": fake_server.url + "/obs", "preset": "flat",
        "stations": {"CM01": "tp_ca_mau", "SD02": "song_doc"},
    })  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert by_station(result.readings) == {
        "tp_ca_mau": [("2024-12-16T10:00:00+00:00", 1.05), ("2024-12-16T11:00:00+00:00", 1.07)],
        # "2024-12-16 19:00" has no offset: read as Vietnam time. "1.01" is a quoted number.
        "song_doc": [("2024-12-16T12:00:00+00:00", 0.98), ("2024-12-16T13:00:00+00:00", 1.01)],
    }
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("unknown_station", "record 3: station 'XX99' is not mapped to one of ours"),
        ("malformed", "record 4: not an object (str)"),
    ]
    assert len(fake_server.requests) == 1


def test_a_mapping_of_config_alone_nested_records_epoch_ms_and_a_forecast(
    fake_server, tmp_path, geodata
):
    doc = {"status": "ok", "data": {"obs": [
        {"gauge": {"code": 7}, "ts": 1734343200000, "h_cm": 121},
        {"gauge": {"code": 7}, "ts": "soon", "h_cm": 122},
        {"gauge": {"code": 7}, "ts": 1734346800000},
    ]}}  # fmt: skip
    fake_server.routes["/gw"] = [Reply.json(json.dumps(doc))]
    source = make_source(tmp_path, geodata, {
        "url": fake_server.url + "/gw", "stations": {"7": "tp_ca_mau"}, "kind": "forecast",
        "records": "data.obs", "station_field": "gauge.code", "time_field": "ts",
        "time_format": "epoch_ms", "value_field": "h_cm", "scale": 0.01,
    })  # fmt: skip

    result = source.fetch(START, END, NOW)

    [reading] = result.readings
    assert (reading.station, reading.time, reading.value) == (
        "tp_ca_mau", datetime(2024, 12, 16, 10, tzinfo=UTC), 1.21)  # fmt: skip
    assert reading.kind is Kind.FORECAST and reading.issued == NOW
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("malformed", "record 1: time 'soon' is not a epoch_ms time"),
        ("malformed", "record 2: no `h_cm`"),
    ]


def test_auth_token_is_sent_but_never_logged(fake_server, tmp_path, geodata, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.routes["/api/mucnuoc/tpcm"] = [payload("vndms_tp_ca_mau.json")]
    fake_server.routes["/api/mucnuoc/namcan"] = [Reply(500, "internal error")]
    source = make_source(tmp_path, geodata, {
        "url": fake_server.url + "/api/mucnuoc/{station}", "preset": "vndms",
        "stations": {"tpcm": "tp_ca_mau", "namcan": "nam_can"},
        "auth_env": "GAUGE_TOKEN", "headers": {"Accept": "application/json"},
    }, environ={"GAUGE_TOKEN": TOKEN})  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert fake_server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert fake_server.requests[0].headers["Accept"] == "application/json"
    assert len(result.readings) == 6 and result.rejected[0].reason == "fetch_failed"
    assert "namcan" in caplog.text  # the failure was logged ...
    assert TOKEN not in caplog.text  # ... without the token
    assert TOKEN not in repr(source)
    assert all(TOKEN not in r.detail for r in result.rejected)


def test_custom_auth_header_without_scheme(fake_server, tmp_path, geodata):
    fake_server.routes["/obs"] = [payload("flat.json")]
    source = make_source(tmp_path, geodata, {
        "url": fake_server.url + "/obs", "preset": "flat", "stations": {"CM01": "tp_ca_mau"},
        "auth_env": "GW_KEY", "auth_header": "X-Api-Key", "auth_scheme": "",
    }, environ={"GW_KEY": TOKEN})  # fmt: skip
    source.fetch(START, END, NOW)
    assert fake_server.requests[0].headers["X-Api-Key"] == TOKEN


def test_missing_auth_env_is_one_config_error_line(tmp_path, geodata):
    with pytest.raises(ConfigError) as info:
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/x", "preset": "flat",
                                        "auth_env": "GAUGE_TOKEN"}, environ={})  # fmt: skip
    assert info.value.problems == [
        "sources.gauges.auth_env: environment variable GAUGE_TOKEN is not set"
    ]


def test_mapping_targets_must_be_stations_measuring_the_variable(tmp_path, geodata):
    with pytest.raises(ConfigError) as info:
        make_source(tmp_path, geodata, {
            "url": "http://127.0.0.1:9/{station}", "preset": "vndms",
            "stations": {"a": "nowhere", "b": "gia_rai", "c": "tp_ca_mau", "d": "tp_ca_mau"},
        })  # fmt: skip
    assert info.value.problems == [
        "sources.gauges.stations.a: 'nowhere' is not a station in geodata",
        "sources.gauges.stations.b: station 'gia_rai' does not measure water_level",
        "sources.gauges.stations: 2 remote stations map to 'tp_ca_mau'",
    ]
    with pytest.raises(ConfigError, match=r"url: preset vndms needs \{station\}"):
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/x", "preset": "vndms",
                                        "stations": {"a": "tp_ca_mau"}})  # fmt: skip
    with pytest.raises(ConfigError, match="time_format: 'dd/mm' is not iso"):
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/x", "time_format": "dd/mm"})


def test_missing_markers_and_strings_are_counted_while_good_values_arrive(
    fake_server, tmp_path, geodata
):
    fake_server.routes["/api/mucnuoc/namcan"] = [payload("vndms_nam_can_bad_values.json")]
    source = vndms(fake_server, tmp_path, geodata, {"namcan": "nam_can"})

    result = source.fetch(START, END, NOW)

    assert by_station(result.readings) == {
        "nam_can": [("2024-12-16T10:00:00+00:00", 1.5), ("2024-12-16T13:00:00+00:00", 1.52)]
    }
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("missing", "station 'namcan' record 1: value -9999.0 marks a missing value"),
        ("malformed", "station 'namcan' record 2: value '---' is not a number"),
        ("missing", "station 'namcan' record 4: value None marks a missing value"),
        ("malformed",
         "station 'namcan' record 5: time '32/12/2024 22:00' does not match '%d/%m/%Y %H:%M'"),
    ]  # fmt: skip
    assert all(r.station == "nam_can" for r in result.rejected)


def test_one_station_failing_after_retries_does_not_lose_the_others(
    fake_server, tmp_path, geodata, caplog
):
    fake_server.routes["/api/mucnuoc/tpcm"] = [Reply(500, "boom")]
    fake_server.routes["/api/mucnuoc/songdoc"] = [payload("vndms_song_doc_stuck_and_spike.json")]
    waits: list[float] = []
    source = vndms(fake_server, tmp_path, geodata, {"tpcm": "tp_ca_mau", "songdoc": "song_doc"},
                   waits=waits)  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert waits == [1.0, 2.0]  # two retries of tpcm, then it gave up
    assert {r.station for r in result.readings} == {"song_doc"}
    assert len(result.readings) == 8
    [failed] = result.rejected
    assert (failed.reason, failed.station) == ("fetch_failed", "tp_ca_mau")
    assert "HTTP 500: boom (gave up after 3 tries)" in failed.detail
    assert any(rec.levelno == logging.WARNING and "other stations still read" in rec.getMessage()
               for rec in caplog.records)  # fmt: skip


def test_every_request_failing_is_a_source_error(fake_server, tmp_path, geodata, closed_port):
    fake_server.routes["/api/mucnuoc/tpcm"] = [Reply(500, "boom")]
    fake_server.routes["/api/mucnuoc/songdoc"] = [Reply(503, "down")]
    source = vndms(fake_server, tmp_path, geodata, {"tpcm": "tp_ca_mau", "songdoc": "song_doc"})
    with pytest.raises(SourceError, match="gauges: all 2 requests failed") as info:
        source.fetch(START, END, NOW)
    assert info.value.retryable

    single = make_source(tmp_path, geodata, {"url": f"http://127.0.0.1:{closed_port}/obs",
                                             "preset": "flat"})  # fmt: skip
    with pytest.raises(SourceError, match="cannot connect"):
        single.fetch(START, END, NOW)


def test_a_gauge_sending_metres_is_a_unit_mismatch(fake_server, tmp_path, geodata, caplog):
    fake_server.routes["/api/mucnuoc/ganhhao"] = [payload("vndms_ganh_hao_metres.json")]
    fake_server.routes["/api/mucnuoc/tpcm"] = [payload("vndms_tp_ca_mau.json")]
    source = vndms(fake_server, tmp_path, geodata, {"ganhhao": "ganh_hao", "tpcm": "tp_ca_mau"})

    result = source.fetch(START, END, NOW)

    assert {r.station for r in result.readings} == {"tp_ca_mau"}
    assert Counter((r.reason, r.station) for r in result.rejected) == {
        ("unit_mismatch", "ganh_hao"): 3
    }
    detail = result.rejected[0].detail
    assert "1.8/2/2.2 match our alarm_m 1.8/2/2.2 in metres" in detail
    assert "set scale = 1.0" in detail
    assert "ganh_hao" in caplog.text and "rejected" in caplog.text


def test_metres_are_fine_when_scale_says_metres(fake_server, tmp_path, geodata):
    fake_server.routes["/api/mucnuoc/ganhhao"] = [payload("vndms_ganh_hao_metres.json")]
    url = fake_server.url + "/api/mucnuoc/{station}"
    source = make_source(tmp_path, geodata, {"url": url, "preset": "vndms", "scale": 1.0,
                                             "stations": {"ganhhao": "ganh_hao"}})  # fmt: skip
    result = source.fetch(START, END, NOW)
    assert [r.value for r in result.readings] == [2.05, 2.12, 2.18] and result.rejected == []


def test_duplicated_timestamps_keep_the_first_and_count_the_rest(fake_server, tmp_path, geodata):
    fake_server.routes["/obs"] = [payload("flat_duplicates.json")]
    source = make_source(tmp_path, geodata, {"url": fake_server.url + "/obs", "preset": "flat",
                                             "stations": {"CM01": "tp_ca_mau"}})  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert [r.value for r in result.readings] == [1.05, 1.07]
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("duplicate", "record 2: same time as record 0"),
        # 10:00Z is 17:00 local: the same instant written differently, with another value.
        ("duplicate", "record 3: same time as record 0 with a different value (1.05)"),
    ]


def test_a_document_without_records_at_the_path_is_a_source_error(fake_server, tmp_path, geodata):
    fake_server.routes["/obs"] = [Reply.json('{"data": {"items": {"CM01": 1.2}}}')]
    source = make_source(tmp_path, geodata, {"url": fake_server.url + "/obs",
                                             "records": "data.items"})  # fmt: skip
    with pytest.raises(SourceError, match=r"gauges: `records` path 'data.items' leads to dict"):
        source.fetch(START, END, NOW)
    with pytest.raises(SourceError, match=r"`records` path 'data.items' not found") as info:
        parse_records({"data": {}}, source.record_map, source="gauges")
    assert not info.value.retryable
    # A VNDMS-style reply without its arrays (e.g. an error object) names what is missing.
    vn = vndms(fake_server, tmp_path, geodata, {"tpcm": "tp_ca_mau"})
    with pytest.raises(SourceError, match="has no `labels` and `value` lists"):
        parse_records({"error": "no data"}, vn.record_map, source="gauges", remote_station="tpcm")


def test_parse_records_reads_a_recorded_payload_without_a_server(tmp_path, geodata):
    source = make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/{station}",
                                             "preset": "vndms",
                                             "stations": {"tpcm": "tp_ca_mau"}})  # fmt: skip
    doc = json.loads((PAYLOADS / "vndms_tp_ca_mau.json").read_text(encoding="utf-8"))
    result = parse_records(doc, source.record_map, source="gauges", remote_station="tpcm")
    assert [r.value for r in result.readings] == [1.05, 1.07, 1.1, 1.12, 1.11, 1.08]
    assert result.rejected == []
