"""Exports: maintenance statistics and the event log, checked against the replayed events."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import shape
from sqlalchemy import create_engine, text

from floodwatch.cli import main
from tests.conftest import DATA
from tests.test_replay import REPLAY, replay_config  # noqa: F401  (fixture)

SEGMENTS = json.loads((DATA / "replay" / "segments.geojson").read_text(encoding="utf-8"))
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
DECEMBER = ("--from", "2024-12-01", "--to", "2024-12-31")


def run(config, *args, ok: bool = True):
    """Invoke the CLI; by default insist on success."""
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def replayed(replay_config):  # noqa: F811
    """The December 2024 spring tide replayed into the test database."""
    run(replay_config, "replay", "--quiet", str(REPLAY))
    return replay_config


def observed(config) -> list[dict]:
    """Observed events from `floodwatch events --format json` (the independent source)."""
    result = run(config, "events", "--kind", "observed", "--format", "json")
    return json.loads(result.output)


def hours(ev: dict) -> float:
    """An event's duration in hours."""
    opened, closed = (datetime.fromisoformat(ev[k]) for k in ("opened_at", "closed_at"))
    return (closed - opened).total_seconds() / 3600


def csv_rows(output: str) -> dict[str, dict[str, str]]:
    """A maintenance CSV as segment id → row."""
    return {row["Mã tuyến"]: row for row in csv.DictReader(io.StringIO(output))}


def sheet_rows(sheet) -> list[dict]:
    """A worksheet's rows under its header row, as dicts."""
    rows = sheet.iter_rows(values_only=True)
    headers = next(rows)
    return [dict(zip(headers, row, strict=True)) for row in rows]


def database_url(config) -> str:
    """The test database URL written into the project config."""
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("database_url"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no database_url")


def test_maintenance_csv_counts_what_the_event_log_says(replayed):
    rows = csv_rows(run(replayed, "export", "maintenance", *DECEMBER).output)
    assert set(rows) == {f["properties"]["id"] for f in SEGMENTS["features"]}
    events = observed(replayed)
    for segment_id, row in rows.items():
        mine = [e for e in events if e["segment_id"] == segment_id]
        assert int(row["Số đợt ngập"]) == len(mine)
        assert float(row["Tổng giờ ngập (giờ)"]) == pytest.approx(sum(map(hours, mine)), abs=0.01)
        peak = max((e["peak_depth_m"] for e in mine), default=0.0)
        assert float(row["Độ sâu lớn nhất (m)"]) == pytest.approx(peak, abs=0.001)
        shares = [float(row[k]) for k in ("Tỷ lệ đợt do triều cường", "Tỷ lệ đợt do mưa",
                                          "Tỷ lệ đợt do mưa kết hợp triều")]  # fmt: skip
        assert sum(shares) == pytest.approx(1.0 if mine else 0.0, abs=0.01)
    low = rows["tide-low"]
    # Three events on 16 and 17 December (local time): two days, one compound.
    assert (low["Số đợt ngập"], low["Số ngày ngập"]) == ("3", "2")
    assert float(low["Tỷ lệ đợt do mưa kết hợp triều"]) == pytest.approx(1 / 3, abs=0.001)
    assert low["Ngày ngập sâu nhất"] == "16/12/2024"
    assert rows["high-dry"]["Số đợt ngập"] == "0" and rows["high-dry"]["Hạng"] == "5"
    # Ranked by score, highest first; the score follows the documented formula.
    ranked = sorted(rows.values(), key=lambda r: int(r["Hạng"]))
    scores = [float(r["Điểm xếp hạng"]) for r in ranked]
    assert scores == sorted(scores, reverse=True)
    depth_hours = sum(hours(e) * e["peak_depth_m"] for e in events if e["segment_id"] == "tide-low")
    assert float(low["Điểm xếp hạng"]) == pytest.approx(depth_hours * 1.0, abs=0.01)  # priority 2


def test_maintenance_xlsx_has_three_sheets_with_formats_and_the_events(replayed, tmp_path):
    out = tmp_path / "ngap.xlsx"
    result = run(replayed, "export", "maintenance", *DECEMBER, "--format", "xlsx", "-o", str(out))
    assert "wrote 5 segments, 7 events" in result.output
    workbook = openpyxl.load_workbook(out)
    assert workbook.sheetnames == ["Tuyến đường", "Các đợt ngập", "Ghi chú"]
    roads, events_sheet, notes = workbook.worksheets
    assert roads.freeze_panes == "A2" and events_sheet.freeze_panes == "A2"
    headers = [c.value for c in roads[1]]
    for header in ("Số đợt ngập", "Số ngày ngập", "Tổng giờ ngập (giờ)", "Độ sâu lớn nhất (m)"):
        assert header in headers
    by_id = {row["Mã tuyến"]: row for row in sheet_rows(roads)}
    events = observed(replayed)
    low = [e for e in events if e["segment_id"] == "tide-low"]
    assert by_id["tide-low"]["Số đợt ngập"] == len(low)
    assert by_id["tide-low"]["Độ sâu lớn nhất (m)"] == pytest.approx(
        max(e["peak_depth_m"] for e in low), abs=0.001
    )
    assert by_id["tide-low"]["Ngày ngập sâu nhất"] == datetime(2024, 12, 16)
    formats = {h: c.number_format for h, c in zip(headers, roads[2], strict=True)}
    assert formats["Độ sâu lớn nhất (m)"] == "0.00"
    assert formats["Tỷ lệ đợt do triều cường"] == "0%"
    assert formats["Ngày ngập sâu nhất"] == "dd/mm/yyyy"

    event_headers = [c.value for c in events_sheet[1]]
    listed = sheet_rows(events_sheet)
    assert sorted(r["Mã đợt"] for r in listed) == sorted(e["id"] for e in events)
    first = next(r for r in listed if r["Mã đợt"] == low[0]["id"])
    opened_local = datetime.fromisoformat(low[0]["opened_at"]).astimezone(ICT)
    assert first["Bắt đầu"] == opened_local.replace(tzinfo=None)
    assert events_sheet.cell(2, event_headers.index("Bắt đầu") + 1).number_format == (
        "dd/mm/yyyy hh:mm"
    )
    noted = {row[0]: row[1] for row in notes.iter_rows(2, None, None, None, True)}
    assert "Σ" in noted["Công thức điểm xếp hạng"]
    assert noted["Kỳ thống kê"].startswith("01/12/2024 00:00")
    assert "Cảnh báo" in noted and "Nguồn" in noted


def test_maintenance_geojson_puts_the_csv_row_on_the_segment_geometry(replayed):
    rows = csv_rows(run(replayed, "export", "maintenance", *DECEMBER).output)
    doc = json.loads(
        run(replayed, "export", "maintenance", *DECEMBER, "--format", "geojson").output
    )
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == len(rows)
    source = {f["properties"]["id"]: shape(f["geometry"]) for f in SEGMENTS["features"]}
    for feature in doc["features"]:
        props = feature["properties"]
        segment_id = props["Mã tuyến"]
        assert shapely.equals(shape(feature["geometry"]), source[segment_id])
        assert {k: "" if v is None else str(v) for k, v in props.items()} == rows[segment_id]


def test_events_export_with_filters_in_three_formats(replayed, tmp_path):
    tide_only = ("--kind", "observed", "--cause", "tide")
    expected = [e for e in observed(replayed) if e["cause"] == "tide"]
    listed = json.loads(run(replayed, "export", "events", *tide_only, "--format", "json").output)
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in expected)
    assert {"id", "segment_id", "opened_at", "peak_depth_m", "cause"} <= set(listed[0])
    assert datetime.fromisoformat(listed[0]["opened_at"]).tzinfo is not None

    rows = list(csv.DictReader(io.StringIO(run(replayed, "export", "events", *tide_only).output)))
    assert [int(r["Mã đợt"]) for r in rows] == [e["id"] for e in listed]
    assert {r["Nguyên nhân"] for r in rows} == {"triều cường"}
    assert rows[0]["Bắt đầu"] == datetime.fromisoformat(listed[0]["opened_at"]).astimezone(
        ICT
    ).strftime("%d/%m/%Y %H:%M")

    out = tmp_path / "dot.xlsx"
    run(replayed, "export", "events", *tide_only, "--road", "triều thấp", "--format", "xlsx",
        "--output", str(out))  # fmt: skip
    sheet = openpyxl.load_workbook(out).active
    ids = [r[0] for r in sheet.iter_rows(2, None, None, None, True)]
    assert ids == [e["id"] for e in listed if e["segment_id"] == "tide-low"]
    assert out.read_bytes()[:2] == b"PK" and not (tmp_path / "dot.xlsx.part").exists()


def test_false_alarms_are_left_out_of_the_statistics(replayed):
    events = observed(replayed)
    rain = next(e for e in events if e["segment_id"] == "rain-only")
    engine = create_engine(database_url(replayed))
    with engine.begin() as conn:
        conn.execute(text("UPDATE event SET false_alarm = TRUE WHERE id = :id"), {"id": rain["id"]})
    engine.dispose()
    rows = csv_rows(run(replayed, "export", "maintenance", *DECEMBER).output)
    assert rows["rain-only"]["Số đợt ngập"] == "0"
    assert rows["rain-only"]["Tổng giờ ngập (giờ)"] == "0.0"
    assert int(rows["rain-only"]["Hạng"]) >= 4  # now ties with the dry road


def test_a_window_clips_the_hours_of_an_event(replayed):
    low = sorted(
        (e for e in observed(replayed) if e["segment_id"] == "tide-low"),
        key=lambda e: e["opened_at"],
    )
    first = low[0]  # 16/12 05:00–09:00 local, the compound burst
    opened, closed = (datetime.fromisoformat(first[k]) for k in ("opened_at", "closed_at"))
    window = ("--from", (opened + (closed - opened) / 2).isoformat(), "--to", closed.isoformat())
    rows = csv_rows(run(replayed, "export", "maintenance", *window).output)
    assert float(rows["tide-low"]["Tổng giờ ngập (giờ)"]) == pytest.approx(hours(first) / 2)
    assert rows["tide-low"]["Số đợt ngập"] == "1" and rows["tide-low"]["Số ngày ngập"] == "1"


def test_export_mistakes_are_one_line_and_exit_1(replayed):
    result = run(replayed, "export", "maintenance", "--format", "xlsx", ok=False)
    assert result.exit_code == 1 and "needs --output" in result.output
    result = run(replayed, "export", "maintenance", "--from", "2025-01-01", "--to", "2024-01-01",
                 ok=False)  # fmt: skip
    assert result.exit_code == 1 and "--from must be before --to" in result.output
    result = run(replayed, "export", "events", "--to", "yesterday", ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_export_help_has_examples(replay_config):  # noqa: F811
    for args in (("export",), ("export", "maintenance"), ("export", "events")):
        result = run(replay_config, *args, "--help")
        assert "floodwatch export" in result.output or "Export" in result.output


def test_a_date_alone_as_the_end_is_that_whole_day_in_cli_export_and_web(replayed):
    """`--to DAY` / `to=DAY` include every event opened that local day, everywhere alike."""
    from fastapi.testclient import TestClient

    from floodwatch.service.app import App
    from floodwatch.web.app import create_app

    events = observed(replayed)
    latest = max(datetime.fromisoformat(e["opened_at"]).astimezone(ICT) for e in events)
    day = latest.date().isoformat()
    before = (latest - timedelta(days=1)).date().isoformat()
    assert latest.hour > 0  # opened after midnight: the day's end matters, not its start

    def ids_cli(*to):
        result = run(replayed, "events", "--kind", "observed", "--format", "json", *to)
        return sorted(e["id"] for e in json.loads(result.output))

    def ids_export(*to):
        result = run(replayed, "export", "events", "--kind", "observed", "--format", "json", *to)
        return sorted(e["id"] for e in json.loads(result.output))

    app = App.open(replayed, with_sources=False, writes=False)
    try:
        with TestClient(create_app(app, secret_key="test-secret")) as client:

            def ids_web(to):
                reply = client.get("/api/v1/events", params={"kind": "observed", "to": to})
                assert reply.status_code == 200, reply.text
                return sorted(e["id"] for e in reply.json()["events"])

            everything = sorted(e["id"] for e in events)
            assert ids_cli("--to", day) == ids_export("--to", day) == ids_web(day) == everything
            earlier = ids_cli("--to", before)
            assert earlier == ids_export("--to", before) == ids_web(before)
            assert len(earlier) < len(everything)  # the last day's events are left out
    finally:
        app.close()


@pytest.mark.parametrize("command", [("events",), ("export", "events", "--format", "json")])
def test_a_reversed_period_is_one_line_and_exit_2(replayed, command):
    result = run(replayed, *command, "--from", "2024-12-17", "--to", "2024-12-16", ok=False)
    assert result.exit_code == 2
    assert "--from '2024-12-17' is after --to '2024-12-16'" in result.output
    assert "Traceback" not in result.output
