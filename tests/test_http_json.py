"""The HTTP JSON gauge adapter against a real local server serving recorded payloads."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests

from floodwatch.config import parse_settings
from floodwatch.core.geo import load_geodata
from floodwatch.core.readings import Kind, Variable
from floodwatch.errors import ConfigError, SourceError
from floodwatch.sources import SourceContext
from floodwatch.sources._http import RetryPolicy
from floodwatch.sources.http_json import HttpJsonSource, parse_records
from tests.conftest import DATA, ROOT
from tests.fakeserver import Reply

PAYLOADS = DATA / "http_json"
# 09:00 on 17/12/2025 in Cà Mau: the VNDMS labels (no year) of 16-17/12 are 2025's.
NOW = datetime(2025, 12, 17, 2, 0, tzinfo=UTC)
VNDMS_PATH = "/home/detailRain"
SONG_DOC = "vndms_song_doc_stuck_and_spike.json"
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
    """A source on the vndms preset, posting to the service endpoint of the fake server."""
    url = fake_server.url + VNDMS_PATH
    return make_source(tmp_path, geodata, {"url": url, "preset": "vndms", "stations": stations},
                       **kw)  # fmt: skip


def vndms_routes(fake_server, replies: dict[str, Reply | list[Reply]]) -> None:
    """Answer VNDMS's one endpoint by the posted station `id`, as the real service does."""
    queues = {sid: list(r) if isinstance(r, list) else [r] for sid, r in replies.items()}

    def answer(request):
        queue = queues.get(request.form.get("id", ""))
        if request.method != "POST" or queue is None:
            return Reply(404, "<html>not found</html>", {"Content-Type": "text/html"})
        return queue.pop(0) if len(queue) > 1 else queue[0]

    fake_server.routes[VNDMS_PATH] = answer


def by_station(readings) -> dict[str, list[tuple[str, float]]]:
    """{station: [(UTC ISO time, value), ...]} of some readings."""
    out: dict[str, list[tuple[str, float]]] = {}
    for r in readings:
        out.setdefault(r.station, []).append((r.time.isoformat(), r.value))
    return out


def test_vndms_preset_posts_the_form_and_reads_metres_in_local_time(fake_server, tmp_path, geodata):
    vndms_routes(fake_server, {"69716": payload("vndms_tp_ca_mau.json"),
                               "69720": payload(SONG_DOC)})  # fmt: skip
    source = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau", "69720": "song_doc"})
    assert source.provides() == {("tp_ca_mau", "water_level"), ("song_doc", "water_level")}
    assert (source.interval_minutes, source.stale_after_minutes) == (15, 60)

    result = source.fetch(START, END, NOW)

    assert result.rejected == []
    got = by_station(result.readings)
    # "17h \n16/12" is 17:00 Vietnam time (UTC+7) in the poll's year: 10:00 UTC. Metres.
    assert got["tp_ca_mau"][:2] == [("2025-12-16T10:00:00+00:00", 1.05),
                                    ("2025-12-16T11:00:00+00:00", 1.07)]  # fmt: skip
    assert len(got["tp_ca_mau"]) == 6
    # Older labels without the space; a stuck sensor and a spike are validation's business.
    assert [v for _, v in got["song_doc"]] == [0.92] * 6 + [2.4, 0.93]
    assert got["song_doc"][-1][0] == "2025-12-16T17:00:00+00:00"  # "0h17/12" local
    assert all(r.variable is Variable.WATER_LEVEL and r.kind is Kind.OBSERVED
               and r.issued is None and r.time.tzinfo is UTC for r in result.readings)  # fmt: skip
    # What public clients send: a form POST per station, a browser User-Agent, the site.
    requests_ = sorted(fake_server.requests, key=lambda r: r.form["id"])
    assert [(r.method, r.path) for r in requests_] == [("POST", VNDMS_PATH)] * 2
    assert requests_[0].form == {"id": "69716", "timeSelect": "7", "source": "Water",
                                 "fromDate": "", "toDate": ""}  # fmt: skip
    assert requests_[0].headers["User-Agent"].startswith("Mozilla/5.0")
    assert requests_[0].headers["Referer"] == fake_server.url + "/"
    # The station's thresholds and record flood are kept as its reference.
    assert result.references[("tp_ca_mau", "water_level")] == {
        "alarm_m": [0.65, 0.75, 0.85], "record_m": 1.21, "record_year": 2025,
        "name": "Cà Mau", "river": "Gành Hào",
    }  # fmt: skip


def test_vndms_labels_without_a_year_across_new_year(fake_server, tmp_path, geodata):
    vndms_routes(fake_server, {"69716": payload("vndms_new_year.json")})
    source = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau"})
    just_after = datetime(2025, 12, 31, 19, 30, tzinfo=UTC)  # 02:30 on 1/1/2026 in Cà Mau
    result = source.fetch(START, END, just_after)
    assert [t for t, _ in by_station(result.readings)["tp_ca_mau"]] == [
        "2025-12-31T15:00:00+00:00", "2025-12-31T16:00:00+00:00",  # 22h, 23h on 31/12/2025
        "2025-12-31T17:00:00+00:00", "2025-12-31T18:00:00+00:00",  # 0h, 1h on 1/1/2026
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("0h \n15/11", "2025-11-14T17:00:00+00:00"),
        ("0h \\n15/11", "2025-11-14T17:00:00+00:00"),  # the line break escaped twice
        ("7h30/12", "2024-12-30T00:00:00+00:00"),  # old style: 07:00 on 30/12, last year's
        ("7h30 15/11", "2025-11-15T00:30:00+00:00"),  # hour and minutes
        ("13h 2/12/2025", "2025-12-02T06:00:00+00:00"),  # a year written out is taken as is
    ],
)
def test_vndms_label_forms(label, expected):
    from zoneinfo import ZoneInfo

    from floodwatch.sources.http_json import parse_vndms_label

    now = datetime(2025, 12, 2, 5, 0, tzinfo=UTC)
    assert parse_vndms_label(label, ZoneInfo("Asia/Ho_Chi_Minh"), now).isoformat() == expected


@pytest.mark.parametrize("label", ["25h 15/11", "0h 31/11", "15/11 0h", "", "0h", 17])
def test_vndms_labels_that_are_not_times(label):
    from zoneinfo import ZoneInfo

    from floodwatch.sources.http_json import parse_vndms_label

    with pytest.raises(ValueError, match="time"):
        parse_vndms_label(label, ZoneInfo("Asia/Ho_Chi_Minh"), NOW)


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
        ("malformed", "record 2 (tp_ca_mau 2024-12-16 11:00Z): no `h_cm`"),
    ]


def test_auth_token_is_sent_but_never_logged(fake_server, tmp_path, geodata, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.routes["/api/mucnuoc/tpcm"] = [Reply.json(json.dumps([
        {"time": "2024-12-16T17:00:00+07:00", "value": 1.05},
        {"time": "2024-12-16T18:00:00+07:00", "value": 1.07},
    ]))]  # fmt: skip
    fake_server.routes["/api/mucnuoc/namcan"] = [Reply(500, "internal error")]
    source = make_source(tmp_path, geodata, {
        "url": fake_server.url + "/api/mucnuoc/{station}", "preset": "flat",
        "stations": {"tpcm": "tp_ca_mau", "namcan": "nam_can"}, "station_field": None,
        "auth_env": "GAUGE_TOKEN", "headers": {"Accept": "application/json"},
    }, environ={"GAUGE_TOKEN": TOKEN})  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert fake_server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert fake_server.requests[0].headers["Accept"] == "application/json"
    assert len(result.readings) == 2 and result.rejected[0].reason == "fetch_failed"
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
            "url": "http://127.0.0.1:9/home/detailRain", "preset": "vndms",
            "stations": {"a": "nowhere", "b": "gia_rai", "c": "tp_ca_mau", "d": "tp_ca_mau"},
        })  # fmt: skip
    assert info.value.problems == [
        "sources.gauges.stations.a: 'nowhere' is not a station in geodata",
        "sources.gauges.stations.b: station 'gia_rai' does not measure water_level",
        "sources.gauges.stations: 2 remote stations map to 'tp_ca_mau'",
    ]
    with pytest.raises(ConfigError, match=r"url: preset vndms posts the station id in a form"):
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/{station}", "preset": "vndms",
                                        "stations": {"a": "tp_ca_mau"}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"stations: preset vndms posts one request per station"):
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/x", "preset": "vndms"})
    with pytest.raises(ConfigError, match="time_format: 'dd/mm' is not iso"):
        make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/x", "time_format": "dd/mm"})


def test_missing_markers_and_strings_are_counted_while_good_values_arrive(
    fake_server, tmp_path, geodata
):
    vndms_routes(fake_server, {"69733": payload("vndms_nam_can_bad_values.json")})
    source = vndms(fake_server, tmp_path, geodata, {"69733": "nam_can"})

    result = source.fetch(START, END, NOW)

    assert by_station(result.readings) == {
        "nam_can": [("2025-12-16T10:00:00+00:00", 1.5), ("2025-12-16T13:00:00+00:00", 1.52)]
    }
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("missing", "station '69733' record 1 (nam_can 2025-12-16 11:00Z): "
                    "value '-' marks a missing value"),
        ("malformed", "station '69733' record 2 (nam_can 2025-12-16 12:00Z): "
                      "value 'abc' is not a number"),
        ("missing", "station '69733' record 4 (nam_can 2025-12-16 14:00Z): "
                    "value '' marks a missing value"),
        ("malformed", "station '69733' record 5: time '22h \\n32/12' is not a date"),
    ]  # fmt: skip
    assert all(r.station == "nam_can" for r in result.rejected)
    # "1.4,1.4": a threshold repeated, the first number taken.
    assert result.references[("nam_can", "water_level")]["alarm_m"] == [1.4, 1.5, 1.6]


def test_one_station_failing_after_retries_does_not_lose_the_others(
    fake_server, tmp_path, geodata, caplog
):
    vndms_routes(fake_server, {"69716": Reply(500, "boom"),
                               "69720": payload(SONG_DOC)})  # fmt: skip
    waits: list[float] = []
    source = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau", "69720": "song_doc"},
                   waits=waits)  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert waits == [1.0, 2.0]  # two retries of 69716, then it gave up
    assert {r.station for r in result.readings} == {"song_doc"}
    assert len(result.readings) == 8
    [failed] = result.rejected
    assert (failed.reason, failed.station) == ("fetch_failed", "tp_ca_mau")
    assert "HTTP 500: boom (gave up after 3 tries)" in failed.detail
    assert any(rec.levelno == logging.WARNING and "other stations still read" in rec.getMessage()
               for rec in caplog.records)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        '{"labels": 17, "value": "1.0"}',  # a number where the labels should be
        '{"labels": ["17h 16/12"], "value": {"a": 1}}',
        '"an error message"',
        "[" * 50_000 + "]" * 50_000,  # nested too deep to read
        '{"labels": "17h 16/12", "value": "' + "9" * 5000 + '"}',
        "<html><body>Bảo trì hệ thống</body></html>",
    ],
    ids=["labels-number", "value-object", "bare-string", "deep", "5000-digits", "html"],
)
def test_one_station_with_a_broken_payload_costs_only_itself(fake_server, tmp_path, geodata, body):
    vndms_routes(fake_server, {"69716": Reply.json(body),
                               "69720": payload(SONG_DOC)})  # fmt: skip
    source = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau", "69720": "song_doc"})
    result = source.fetch(START, END, NOW)
    assert {r.station for r in result.readings} == {"song_doc"}
    assert all(r.station in ("tp_ca_mau", None) for r in result.rejected)
    assert result.rejected, "the broken payload must be accounted for"


def test_every_request_failing_is_a_source_error(fake_server, tmp_path, geodata, closed_port):
    vndms_routes(fake_server, {"69716": Reply(500, "boom"), "69720": Reply(503, "down")})
    source = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau", "69720": "song_doc"})
    with pytest.raises(SourceError, match="gauges: all 2 requests failed") as info:
        source.fetch(START, END, NOW)
    assert info.value.retryable

    single = make_source(tmp_path, geodata, {"url": f"http://127.0.0.1:{closed_port}/obs",
                                             "preset": "flat"})  # fmt: skip
    with pytest.raises(SourceError, match="cannot connect"):
        single.fetch(START, END, NOW)


def test_a_gauge_sending_centimetres_is_a_unit_mismatch(fake_server, tmp_path, geodata, caplog):
    vndms_routes(fake_server, {"69740": payload("vndms_ganh_hao_centimetres.json"),
                               "69716": payload("vndms_tp_ca_mau.json")})  # fmt: skip
    source = vndms(fake_server, tmp_path, geodata, {"69740": "ganh_hao", "69716": "tp_ca_mau"})

    result = source.fetch(START, END, NOW)

    assert {r.station for r in result.readings} == {"tp_ca_mau"}
    assert Counter((r.reason, r.station) for r in result.rejected) == {
        ("unit_mismatch", "ganh_hao"): 3
    }
    detail = result.rejected[0].detail
    assert "payload alarm levels 180/200/220 are 100x the expected 1.8/2/2.2" in detail
    assert "sending centimetres (set scale = 0.01" in detail
    assert "ganh_hao" in caplog.text and "rejected" in caplog.text


def test_centimetres_are_fine_when_scale_says_centimetres(fake_server, tmp_path, geodata):
    vndms_routes(fake_server, {"69740": payload("vndms_ganh_hao_centimetres.json")})
    url = fake_server.url + VNDMS_PATH
    source = make_source(tmp_path, geodata, {"url": url, "preset": "vndms", "scale": 0.01,
                                             "stations": {"69740": "ganh_hao"}})  # fmt: skip
    result = source.fetch(START, END, NOW)
    assert [r.value for r in result.readings] == [2.05, 2.12, 2.18] and result.rejected == []


def test_duplicated_timestamps_keep_the_first_and_count_the_rest(fake_server, tmp_path, geodata):
    fake_server.routes["/obs"] = [payload("flat_duplicates.json")]
    source = make_source(tmp_path, geodata, {"url": fake_server.url + "/obs", "preset": "flat",
                                             "stations": {"CM01": "tp_ca_mau"}})  # fmt: skip

    result = source.fetch(START, END, NOW)

    assert [r.value for r in result.readings] == [1.05, 1.07]
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("duplicate", "record 2 (tp_ca_mau 2024-12-16 10:00Z): same time as record 0"),
        # 10:00Z is 17:00 local: the same instant written differently, with another value.
        (
            "duplicate",
            "record 3 (tp_ca_mau 2024-12-16 10:00Z): same time as record 0 "
            "with a different value (1.05)",
        ),
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
    # A VNDMS reply without its columns (e.g. an error object) names what is missing.
    vn = vndms(fake_server, tmp_path, geodata, {"69716": "tp_ca_mau"})
    with pytest.raises(SourceError, match="has no `labels` and `value` lists"):
        parse_records({"error": "no data"}, vn.record_map, source="gauges", remote_station="69716")


def test_parse_records_reads_a_recorded_payload_without_a_server(tmp_path, geodata):
    source = make_source(tmp_path, geodata, {"url": "http://127.0.0.1:9/home/detailRain",
                                             "preset": "vndms",
                                             "stations": {"69716": "tp_ca_mau"}})  # fmt: skip
    doc = json.loads((PAYLOADS / "vndms_tp_ca_mau.json").read_text(encoding="utf-8"))
    result = parse_records(doc, source.record_map, source="gauges", remote_station="69716",
                           now=NOW)  # fmt: skip
    assert [r.value for r in result.readings] == [1.05, 1.07, 1.1, 1.12, 1.11, 1.08]
    assert result.rejected == []
