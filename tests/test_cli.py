"""The command line: help everywhere, tide predict/fit, poll → status → events, clear failures."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import click
import numpy as np
import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.cli.service import EVENT_COLUMNS
from floodwatch.core.tides import (
    ConstituentTable,
    high_low_waters,
    load_constituents,
    predict_levels,
)

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)$")


def run(config, *args):
    """Invoke the CLI on a config and return the result."""
    return CliRunner().invoke(main, ["--config", str(config), *args])


def walk(group: click.Group, path: tuple[str, ...] = ()):
    """Every (command path, command) under a group, depth first."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


COMMANDS = list(walk(main))


def test_the_walk_finds_nested_commands():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"check", "poll", "tide", "tide predict", "tide fit"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example(path, command):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if not isinstance(command, click.Group):
        assert "Example" in result.output, f"`floodwatch {' '.join(path)} --help` has no example"


def test_main_help_exits_0():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_tide_predict_extremes_alternate_on_the_table_scale(project):
    result = run(
        project, "tide", "predict", "tp_ca_mau", "--from", "2025-11-04", "--to", "2025-11-06",
        "--extremes-only",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if not line.startswith("#")]
    kinds = [row[0] for row in rows]
    levels = {kind: [float(row[3]) for row in rows if row[0] == kind] for kind in ("high", "low")}
    assert len(rows) >= 6  # about four tides a day in a mixed regime, over two days
    assert set(kinds) == {"high", "low"}
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds
    assert all(0.5 <= h <= 1.2 for h in levels["high"]), levels
    assert max(levels["low"]) < min(levels["high"])


def test_tide_predict_unknown_station_is_one_line(project):
    result = run(project, "tide", "predict", "nowhere")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: no constituent table for 'nowhere'")
    assert "tp_ca_mau" in line  # the known stations are listed
    assert "Traceback" not in result.output


def flattest_season_month(table: ConstituentTable) -> datetime:
    """The start of the 30 days of 2025 over which the table's Sa and Ssa terms vary least.

    A month cannot resolve the annual and semi-annual terms (Sa is 27 cm here), so
    the fit is only expected to reproduce the table where they are nearly constant.
    """
    keep = [i for i, name in enumerate(table.names) if name in ("SA", "SSA")]
    seasonal = ConstituentTable(
        "seasonal", 0.0, tuple(table.names[i] for i in keep), table.amplitudes_m[keep],
        table.phases_deg[keep],
    )  # fmt: skip
    days = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(365 + 30)]
    levels = predict_levels(seasonal, days)
    spread = [np.ptp(levels[d : d + 31]) for d in range(365)]
    return days[int(np.argmin(spread))]


def test_tide_fit_recovers_the_table_it_was_given(project, tmp_path):
    table = load_constituents(project.parent / "tides" / "tp_ca_mau.csv", "tp_ca_mau")
    start = flattest_season_month(table)
    times = [start + timedelta(hours=h) for h in range(30 * 24)]
    levels = predict_levels(table, times)
    obs = tmp_path / "obs.csv"
    with obs.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "station", "variable", "value", "kind"])
        for when, level in zip(times, levels, strict=True):
            writer.writerow(
                [when.isoformat(), "tp_ca_mau", "water_level", f"{level:.4f}", "observed"]
            )

    out = tmp_path / "fitted.csv"
    result = run(project, "tide", "fit", "tp_ca_mau", str(obs), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "rejected" not in result.stderr

    fitted = load_constituents(out, "tp_ca_mau")
    m2 = table.amplitudes_m[table.names.index("M2")]
    assert fitted.amplitudes_m[fitted.names.index("M2")] == pytest.approx(m2, abs=0.01)
    residual = predict_levels(fitted, times) - levels
    assert float(np.sqrt(np.mean(residual**2))) < 0.02


def spring_tide_morning(project) -> datetime:
    """A time in Nov 2025 a day before a TP Cà Mau high water of at least 0.92 m."""
    table = load_constituents(project.parent / "tides" / "tp_ca_mau.csv", "tp_ca_mau")
    highs = [
        e
        for e in high_low_waters(
            table, datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
        )
        if e.kind == "high" and e.level_m >= 0.92
    ]
    assert highs, "the shipped table has no spring tide of 0.92 m in Nov 2025"
    peak = max(highs, key=lambda e: e.level_m)
    return (peak.time - timedelta(hours=24)).replace(minute=0)


def test_poll_then_status_and_events(project):
    at = spring_tide_morning(project)
    result = run(project, "poll", "--at", at.isoformat())
    assert result.exit_code == 0, result.output
    assert "Next high waters" in result.output
    assert "DỰ BÁO NGẬP" in result.output

    status = run(project, "status")
    assert status.exit_code == 0, status.output
    expected = re.search(r"^Expected to flood: (\d+)$", status.output, re.M)
    assert expected and int(expected.group(1)) >= 1, status.output
    roads = [line for line in status.output[expected.end() :].splitlines() if line.strip()]
    assert len(roads) == int(expected.group(1))
    assert all(road.startswith("  Đường ") for road in roads), roads  # indented road names

    as_json = run(project, "events", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    events = json.loads(as_json.output)
    assert isinstance(events, list) and events
    for ev in events:
        assert set(EVENT_COLUMNS) <= set(ev), ev
        assert ev["kind"] == "forecast"
        for key in ("opened_at", "peak_at"):
            assert ISO_WITH_OFFSET.match(ev[key]), ev[key]
            assert datetime.fromisoformat(ev[key]).utcoffset() is not None
        assert ev["closed_at"] is None or ISO_WITH_OFFSET.match(ev["closed_at"])

    as_csv = run(project, "events", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    reader = csv.reader(io.StringIO(as_csv.output))
    assert next(reader) == [
        "id", "segment_id", "segment_name", "unit", "kind", "status", "opened_at", "closed_at",
        "peak_depth_m", "peak_at", "max_level", "cause",
    ]  # fmt: skip
    assert len(list(reader)) == len(events)


def test_replay_of_a_missing_file_is_one_line(project, tmp_path):
    result = run(project, "replay", str(tmp_path / "gone.csv"))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'gone.csv'}: cannot open")
    assert "Traceback" not in result.output


def test_replay_of_a_csv_without_value_column_names_it(project, tmp_path):
    bad = tmp_path / "novalue.csv"
    bad.write_text(
        "time,station,variable,kind\n2025-11-05T12:00:00+07:00,tp_ca_mau,water_level,observed\n",
        encoding="utf-8",
    )
    result = run(project, "replay", str(bad))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "missing column(s) value" in line
    assert line.startswith(f"error: {bad}: line 1: ")
    assert "Traceback" not in result.output
