"""`tide import` of published tables, and our tide convention against hatyan (issue 12)."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.core.tides import load_constituents, predict_levels

DATA = Path(__file__).parent / "data"
VUNG_TAU = DATA / "neaps_vung_tau.json"
QUI_NHON = DATA / "neaps_qui_nhon.json"
TICON = DATA / "ticon4_two_stations.txt"
NOAA = DATA / "noaa_9414290_harcon.json"
# The 14 TICON-4 constituents uptide (the engine before issue 12) did not know.
NEW_TO_THE_ENGINE = {"2Q1", "EPS2", "OO1", "S3", "MA2", "MB2", "T3", "R3", "RHO1", "SIGMA1",
                     "3L2", "3N2", "2MK5", "2MO5"}  # fmt: skip
# Our names -> hatyan's, for the constituents hatyan knows under another spelling.
HATYAN_NAMES = {"LAMBDA2": "LABDA2", "RHO1": "RO1", "MTM": "MFM"}


def run(*args):
    """Invoke the CLI (no config needed for `tide import`)."""
    return CliRunner().invoke(main, list(map(str, args)))


def imported(tmp_path: Path, source: Path, *options) -> tuple[Path, str]:
    """Import SOURCE into a CSV; return its path and text."""
    out = tmp_path / f"{source.stem}.csv"
    result = run("tide", "import", source, *options, "--out", out)
    assert result.exit_code == 0, result.output
    return out, out.read_text(encoding="utf-8")


def test_neaps_table_imports_all_50_with_attribution_and_datum(tmp_path):
    out, text = imported(tmp_path, VUNG_TAU, "--datum", "LAT")
    table = load_constituents(out, "vung_tau")
    assert len(table.names) == 50
    assert set(table.names) >= NEW_TO_THE_ENGINE
    assert "Hart-Davis, M., Dettmering, D., Seitz, F. (2025), TICON-4" in text
    assert "cc-by-4.0" in text and "MSL 2.721" in text and "LAT -0.176" in text
    assert table.z0_m == pytest.approx(2.721 + 0.176, abs=1e-3)  # MSL above LAT
    m2 = table.names.index("M2")
    assert table.amplitudes_m[m2] == pytest.approx(0.77332)
    assert table.phases_deg[m2] == pytest.approx(193.77)


def test_imported_vung_tau_predicts_a_year(tmp_path, project):
    out, _ = imported(tmp_path, VUNG_TAU, "--datum", "LAT")
    shutil.copy(out, project.parent / "tides" / "vung_tau.csv")
    result = CliRunner().invoke(main, ["--config", str(project), "tide", "predict", "vung_tau",
                                       "--from", "2026-01-01", "--to", "2026-12-31"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line and line[0].isdigit()]
    levels = np.array([float(row[2]) for row in rows])  # date, time, level
    assert len(levels) == 365 * 24
    extremes = [line for line in result.output.splitlines() if line.startswith(("high", "low"))]
    assert len(extremes) > 4 * 300  # mixed semi-diurnal: about four a day
    # Levels above LAT: between 0 and HAT - LAT (the source's 19-year extremes), give or take.
    hat_above_lat = 4.345 + 0.176
    assert -0.05 < levels.min() < 0.5 and 3.8 < levels.max() < hat_above_lat + 0.05
    header = result.output.splitlines()[0]
    assert header.startswith("# vung_tau: predicted level, m (the source's LAT (not the national")


@pytest.mark.parametrize(
    ("args", "reference"),
    [
        ((), "the station's mean sea level (not the national datum): import with --z0"),
        (("--z0", "0.3"), "national datum (Hòn Dấu)"),
    ],
)
def test_predict_says_what_the_levels_are_measured_from(tmp_path, project, args, reference):
    out, text = imported(tmp_path, VUNG_TAU, *args)
    assert f"# Levels on: {reference}\n" in text
    assert load_constituents(out, "vung_tau").reference == reference
    shutil.copy(out, project.parent / "tides" / "vung_tau.csv")
    result = CliRunner().invoke(main, ["--config", str(project), "tide", "predict", "vung_tau"])
    assert result.output.splitlines()[0].startswith(f"# vung_tau: predicted level, m ({reference})")
    shipped = CliRunner().invoke(main, ["--config", str(project), "tide", "predict", "tp_ca_mau"])
    assert "m (national datum (Hòn Dấu))" in shipped.output.splitlines()[0]


def test_ticon_text_file_needs_a_station_when_it_holds_several(tmp_path):
    result = run("tide", "import", TICON)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert str(TICON) in line and "record_source" in line and "--station" in line
    out, text = imported(tmp_path, TICON, "--station", "qui_nhon-381-vnm-uhslc_fd")
    table = load_constituents(out, "qui_nhon")
    assert len(table.names) == 50 and table.z0_m == 0.0
    neaps = {c["name"]: c for c in json.loads(QUI_NHON.read_text())["harmonic_constituents"]}
    m2 = table.names.index("M2")
    assert table.amplitudes_m[m2] == pytest.approx(neaps["M2"]["amplitude"], abs=1e-5)  # cm -> m
    assert "CC BY 4.0" in text and "TICON-4" in text


def test_noaa_harcon_maps_names_and_converts_feet(tmp_path):
    out, text = imported(tmp_path, NOAA, "--station", "9414290", "--z0", "1.0")
    table = load_constituents(out, "sf")
    assert len(table.names) == 37
    assert {"LAMBDA2", "RHO1", "S6", "2MK3"} <= set(table.names)
    assert "LAM2" not in table.names and "RHO" not in table.names
    m2 = table.names.index("M2")
    assert table.amplitudes_m[m2] == pytest.approx(1.89 * 0.3048, abs=1e-5)
    assert table.z0_m == 1.0 and "public domain" in text


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["HarmonicConstituents"][3].update(name="XX9"), "HarmonicConstituents[3].name"),
        (lambda d: d["HarmonicConstituents"][0].update(amplitude="n/a"),
         "HarmonicConstituents[0].amplitude"),
        (lambda d: d["HarmonicConstituents"][1].update(name="LAM2", amplitude=0.1),
         "HarmonicConstituents[15].name"),  # S2 renamed LAM2: the real LAM2 is the duplicate
        (lambda d: d.update(units="fathoms"), "units"),
    ],
    ids=["unknown constituent", "amplitude not a number", "duplicate after aliasing", "units"],
)  # fmt: skip
def test_bad_input_is_one_line_naming_file_and_field_exit_2(tmp_path, edit, field):
    data = json.loads(NOAA.read_text())
    edit(data)
    bad = tmp_path / "harcon.json"
    bad.write_text(json.dumps(data))
    result = run("tide", "import", bad, "--out", tmp_path / "x.csv")
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {bad}: {field}"), line
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.csv").exists()


def test_unknown_constituent_is_refused_by_name(tmp_path):
    data = json.loads(VUNG_TAU.read_text())
    data["harmonic_constituents"].append({"name": "ZZ7", "amplitude": 0.01, "phase": 3.0})
    bad = tmp_path / "station.json"
    bad.write_text(json.dumps(data))
    result = run("tide", "import", bad)
    assert result.exit_code == 2
    assert "'ZZ7' is unknown to the tide engine" in result.stderr


def test_missing_datum_names_the_datums_the_source_has(tmp_path):
    result = run("tide", "import", VUNG_TAU, "--datum", "NAVD88")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert "datums.NAVD88" in line and "LAT" in line


def hatyan_levels(table, times: list[datetime]) -> np.ndarray:
    """hatyan's prediction (Schureman nodal factors) of the table's constituents it knows."""
    import pandas as pd

    warnings.filterwarnings("ignore")
    logging.getLogger("hatyan").setLevel(logging.ERROR)
    import hatyan

    known = set(hatyan.get_const_list_hatyan("all_schureman"))
    rows = [(HATYAN_NAMES.get(n, n), a, p)
            for n, a, p in zip(table.names, table.amplitudes_m, table.phases_deg, strict=True)
            if HATYAN_NAMES.get(n, n) in known]  # fmt: skip
    comp = pd.DataFrame({"A": [r[1] for r in rows], "phi_deg": [r[2] for r in rows]},
                        index=[r[0] for r in rows])  # fmt: skip
    comp.attrs.update(nodalfactors=True, fu_alltimes=True, xfac=False, source="schureman",
                      tzone="UTC")  # fmt: skip
    index = pd.DatetimeIndex(times)
    values = hatyan.prediction(comp, times=index)["values"].to_numpy()
    return values, {HATYAN_NAMES.get(n, n) for n in table.names} - known


@pytest.mark.parametrize(("source", "goal_m"), [(VUNG_TAU, 0.01), (QUI_NHON, 0.01)],
                         ids=["Vũng Tàu", "Qui Nhơn"])  # fmt: skip
def test_a_year_of_predictions_agrees_with_hatyan(tmp_path, source, goal_m):
    out, _ = imported(tmp_path, source)
    table = load_constituents(out, source.stem)
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(365 * 24)]
    theirs, unknown_to_hatyan = hatyan_levels(table, times)
    # Same constituents on both sides: drop from ours the ones hatyan does not know.
    keep = [i for i, n in enumerate(table.names) if HATYAN_NAMES.get(n, n) not in unknown_to_hatyan]
    same = type(table)(table.station, 0.0, tuple(table.names[i] for i in keep),
                       table.amplitudes_m[keep], table.phases_deg[keep])  # fmt: skip
    ours = predict_levels(same, times)
    rms = float(np.sqrt(np.mean((ours - theirs) ** 2)))
    worst = np.abs(ours - theirs).max()
    print(f"{source.stem}: {len(keep)} constituents, RMS {rms * 100:.2f} cm, "
          f"max {worst * 100:.2f} cm; not in hatyan: {sorted(unknown_to_hatyan)}")  # fmt: skip
    assert len(keep) >= 42
    assert rms < goal_m


# Our names -> utide's, and the solar perihelion p' in utide's Sa and S1 arguments.
UTIDE_NAMES = {"LAMBDA2": "LDA2", "SIGMA1": "SIG1"}
UTIDE_PERIHELION = {"SA": -1.0, "S1": 1.0}


def utide_levels(table, days: np.ndarray, perihelion_deg: float):
    """utide.reconstruct of the table's constituents utide knows, and the names it keeps."""
    import utide

    known = {str(n) for n in utide._ut_constants.ut_constants.const.name}
    keep = [i for i, n in enumerate(table.names) if UTIDE_NAMES.get(n, n) in known]
    names = [UTIDE_NAMES.get(table.names[i], table.names[i]) for i in keep]
    # A coefficient structure for these constituents (from a short dummy fit), then ours.
    coef = utide.solve(days[: 24 * 40], np.sin(days[: 24 * 40]), lat=10.0, constit=names,
                       epoch="1970-01-01", method="ols", conf_int="none", trend=False,
                       nodal=True, verbose=False)  # fmt: skip
    where = {str(n): j for j, n in enumerate(coef.name)}
    for i, name in zip(keep, names, strict=True):
        coef.A[where[name]] = table.amplitudes_m[i]
        shift = UTIDE_PERIHELION.get(name, 0.0) * perihelion_deg
        coef.g[where[name]] = (table.phases_deg[i] + shift) % 360.0
    coef.mean = 0.0
    return utide.reconstruct(days, coef, epoch="1970-01-01", verbose=False).h, keep


@pytest.mark.parametrize("source", [VUNG_TAU, QUI_NHON], ids=["Vũng Tàu", "Qui Nhơn"])
def test_a_year_of_predictions_agrees_with_utide(tmp_path, source):
    from floodwatch.core.tides import _perihelion_deg

    out, _ = imported(tmp_path, source)
    table = load_constituents(out, source.stem)
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(365 * 24)]
    days = (np.arange(len(times)) / 24.0) + (datetime(2026, 1, 1) - datetime(1970, 1, 1)).days
    warnings.filterwarnings("ignore")
    theirs, keep = utide_levels(table, days, _perihelion_deg(days.mean() * 86400.0))
    same = type(table)(table.station, 0.0, tuple(table.names[i] for i in keep),
                       table.amplitudes_m[keep], table.phases_deg[keep])  # fmt: skip
    diff = predict_levels(same, times) - theirs
    rms = float(np.sqrt(np.mean(diff**2)))
    print(f"{source.stem}: {len(keep)} constituents, RMS {rms * 100:.2f} cm, "
          f"max {np.abs(diff).max() * 100:.2f} cm vs utide")  # fmt: skip
    assert {"RHO1", "2MK5", "2MO5"} <= {table.names[i] for i in keep}  # not in hatyan
    assert rms < 0.01


def test_ticon_bad_line_names_the_line_and_column(tmp_path):
    lines = TICON.read_text().splitlines()
    fields = lines[4].split("\t")
    fields[3] = "abc"
    bad = tmp_path / "ticon.txt"
    bad.write_text("\n".join([*lines[:4], "\t".join(fields), *lines[5:]]) + "\n")
    result = run("tide", "import", bad, "--station", "vung_tau-383-vnm-uhslc_fd")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: line 5: ampl: 'abc' is not a number"
    short = tmp_path / "short.txt"
    short.write_text("10.3\t107.0\tM2\t77.3\t193.8\n")
    result = run("tide", "import", short, "--format", "ticon")
    assert result.exit_code == 2
    assert "line 1: expected 13 columns" in result.stderr
