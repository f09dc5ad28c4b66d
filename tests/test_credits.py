"""Providers' terms in the open: `check` warns of Open-Meteo's free API, and the data
credits reach the bulletin, the web footer, the planners' workbook and CAP `source`."""

from __future__ import annotations

import re

import openpyxl
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from lxml import etree

from floodwatch.cli import main
from floodwatch.config import load_settings
from floodwatch.core.text import Credit
from floodwatch.exports.cap import CAP_NS, SCHEMA_PATH
from floodwatch.service.app import App
from floodwatch.sources import data_credits
from floodwatch.web.app import create_app
from tests.conftest import DATA, edit_config, on_test_roads

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
TICON = DATA / "ticon4_two_stations.txt"
OPEN_METEO = "Dữ liệu thời tiết: Open-Meteo.com (CC BY 4.0), đã qua xử lý"
TICON_CREDIT = (
    "Hằng số thủy triều: TICON-4: Hart-Davis, M., Dettmering, D., Seitz, F. (2025), "
    "TICON-4: TIdal CONstants based on GESLA-4 sea-level records, SEANOE, "
    "https://doi.org/10.17882/109129 (CC BY 4.0), đã qua xử lý"
)
FREE = {"rain": "https://api.open-meteo.com/v1/forecast",
        "sea_level": "https://marine-api.open-meteo.com/v1/marine"}  # fmt: skip


def cli(config, *args, env=None):
    """Invoke the CLI with the config."""
    return CliRunner().invoke(main, ["--config", str(config), *args], env=env)


def on_hosts(config, **urls: str) -> None:
    """Point the Open-Meteo sources (`rain`, `sea_level`) at these base URLs."""
    text = config.read_text(encoding="utf-8")
    for name, url in urls.items():
        path = "/v1/forecast" if name == "rain" else "/v1/marine"
        text, n = re.subn(rf'base_url = "[^"]*{path}"', f'base_url = "{url}"', text)
        assert n == 1, name
    config.write_text(text, encoding="utf-8")


def warnings(result) -> list[str]:
    """The `warning:` lines of a run."""
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def test_check_warns_of_open_meteos_free_api_and_still_exits_0(project):
    result = cli(project, "check")  # the test's own endpoint on 127.0.0.1: no terms to keep
    assert result.exit_code == 0 and warnings(result) == [], result.output

    on_hosts(project, **FREE)  # the shipped defaults
    result = cli(project, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")
    assert [w.split(":")[1].strip() for w in warnings(result)] == [
        "sources.rain", "sources.sea_level"
    ]  # fmt: skip
    assert (
        "api.open-meteo.com is Open-Meteo's free API, for non-commercial use only"
        in (warnings(result)[0])
    )

    # A subscription: the customer- host with its key. The marine source turned off.
    on_hosts(project, rain="https://customer-api.open-meteo.com/v1/forecast")
    edit_config(
        project,
        {'type = "open_meteo_rain"\n': 'type = "open_meteo_rain"\napikey_env = "OM_KEY"\n',
         'type = "open_meteo_sea_level"\n': 'type = "open_meteo_sea_level"\nenabled = false\n'},
    )  # fmt: skip
    result = cli(project, "check", env={"OM_KEY": "k"})
    assert result.exit_code == 0 and warnings(result) == [], result.output


@pytest.fixture
def credited(project, tmp_path):
    """The test roads replayed, and a TICON-4 table (CC BY 4.0) imported for Gành Hào."""
    on_test_roads(project)
    table = project.parent / "tides" / "ganh_hao.csv"
    imported = CliRunner().invoke(
        main, ["tide", "import", str(TICON), "--station", "qui_nhon-381-vnm-uhslc_fd",
               "--z0", "0.42", "--out", str(table)],
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert cli(project, "replay", "--quiet", str(REPLAY)).exit_code == 0
    return project


def footer(config) -> str:
    """The web's footer on the map page."""
    app = App.open(config, writes=False)
    try:
        with TestClient(create_app(app, secret_key="test-secret")) as client:
            page = client.get("/").text
    finally:
        app.close()
    return page[page.index("<footer>") : page.index("</footer>")]


def cap_sources(config) -> list[str | None]:
    """The `source` of every CAP alert of the replay (checked against the schema)."""
    feed = cli(config, "export", "cap", "--since", "2024-12-01")
    assert feed.exit_code == 0, feed.output
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    alerts = etree.fromstring(feed.stdout.encode()).iter(f"{{{CAP_NS}}}alert")
    found = []
    for alert in alerts:
        assert schema.validate(alert), schema.error_log
        found.append(alert.findtext(f"{{{CAP_NS}}}source"))
    assert found
    return found


def workbook_notes(config, tmp_path) -> dict[str, str]:
    """The notes sheet of the planners' workbook."""
    out = tmp_path / "thong-ke.xlsx"
    period = ("--from", "2024-12-01", "--to", "2024-12-31")
    result = cli(config, "export", "maintenance", *period, "--format", "xlsx", "-o", str(out))
    assert result.exit_code == 0, result.output
    notes = openpyxl.load_workbook(out)["Ghi chú"]
    return {row[0]: row[1] for row in notes.iter_rows(2, None, None, None, True)}


def test_credits_reach_every_surface_where_people_see_the_data(credited, tmp_path):
    settings = load_settings(credited)
    assert data_credits(settings) == [  # in the config's order: [sources.tide] first
        Credit("tide", TICON_CREDIT.split(": ", 1)[1].rsplit(" (CC BY", 1)[0], "CC BY 4.0"),
        Credit("weather", "Open-Meteo.com", "CC BY 4.0", "https://open-meteo.com/"),
    ]
    assert [c.line() for c in data_credits(settings)] == [TICON_CREDIT, OPEN_METEO]

    bulletin = cli(credited, "bulletin", "--at", "2024-12-16T06:00+07:00")
    assert bulletin.exit_code == 0, bulletin.output
    # Printed as plain text: a link keeps its address, in brackets (html_to_plain).
    linked = OPEN_METEO.replace("Open-Meteo.com", "Open-Meteo.com (https://open-meteo.com/)")
    assert bulletin.stdout.rstrip().splitlines()[-2:] == [TICON_CREDIT, linked]

    html = footer(credited)
    assert '<a href="https://open-meteo.com/">Open-Meteo.com</a> (CC BY 4.0), đã qua xử lý' in html
    assert "TICON-4: Hart-Davis" in html

    assert workbook_notes(credited, tmp_path)["Nguồn dữ liệu"] == f"{TICON_CREDIT}\n{OPEN_METEO}"
    assert set(cap_sources(credited)) == {f"{TICON_CREDIT}; {OPEN_METEO}"}


def test_no_credit_without_a_source_that_asks_for_one(project, tmp_path):
    on_test_roads(project)
    edit_config(
        project,
        {'type = "open_meteo_rain"\n': 'type = "open_meteo_rain"\nenabled = false\n',
         'type = "open_meteo_sea_level"\n': 'type = "open_meteo_sea_level"\nenabled = false\n'},
    )  # fmt: skip
    assert cli(project, "replay", "--quiet", str(REPLAY)).exit_code == 0
    assert data_credits(load_settings(project)) == []  # the sample tide tables name no licence
    bulletin = cli(project, "bulletin", "--at", "2024-12-16T06:00+07:00")
    assert bulletin.exit_code == 0 and "Dữ liệu thời tiết" not in bulletin.stdout
    assert "Open-Meteo" not in footer(project)
    assert "Nguồn dữ liệu" not in workbook_notes(project, tmp_path)
    assert set(cap_sources(project)) == {None}
