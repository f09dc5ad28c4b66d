"""Hostile readings: replay CSV, drop-folder CSV and HTTP JSON payloads.

A file unusable as a whole is one `error:` line naming it (exit 1) and stores
nothing; a bad row is listed by its line number while the good rows go through
(exit 3); a row from the future never makes a cycle. In the drop folder every
bad file is quarantined with its reason and `poll` carries on; a gauge's
hostile payload is recorded against the source and never costs another
station its readings. Never a traceback.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer, Reply
from tests.hostile_helpers import (
    DEEP,
    HUGE_DIGITS,
    NOT_TEXT,
    cli,
    count_rows,
    db_path,
    error_lines,
    last_cycle,
    recent_hours,
    write_config,
)

HEADER = "time,station,variable,value,kind,issued"


def good_rows() -> list[str]:
    """Three plausible recent observations at TP Cà Mau."""
    return [f"{t.isoformat()},tp_ca_mau,water_level,{v},," for t, v in
            zip(recent_hours(3), (0.45, 0.52, 0.6), strict=True)]  # fmt: skip


def between_good_rows() -> str:
    """Half past the hour before last: between the good rows, never equal to one of them."""
    return (recent_hours(2)[0] + timedelta(minutes=30)).isoformat()


# --- replay: files unusable as a whole ------------------------------------------

WHOLE_FILES = {
    **NOT_TEXT,
    "header-200kb": (HEADER + "," + "x" * 200_000 + "\n").encode(),
    "missing-columns": b"time,station,value\n2024-12-16T17:00:00+07:00,tp_ca_mau,1.0\n",
    "unknown-column": b"time,station,variable,value,colour\n",
    "empty-file": b"",
    "only-blank-lines": b"\n\n\n",
    "nul-in-a-row": b"time,station,variable,value\n2024-12-16T17:00:00+07:00,tp\x00,rainfall,1\n",
}


@pytest.fixture
def config(tmp_path) -> Path:
    """The shipped geodata on a fresh SQLite file, no sources."""
    return write_config(tmp_path / "etc")


@pytest.mark.parametrize("content", list(WHOLE_FILES.values()), ids=list(WHOLE_FILES))
def test_replay_of_an_unusable_file_is_one_line_and_stores_nothing(tmp_path, config, content):
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    result = cli(config, "replay", "--quiet", str(path))
    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert str(path) in line, line
    assert len(line) < 400, line[:400]
    assert count_rows(db_path(config), "reading") == 0


@pytest.mark.parametrize("name", ["missing.csv", "a-folder.csv"])
def test_replay_of_a_missing_file_or_folder_is_one_line(tmp_path, config, name):
    path = tmp_path / name
    if name == "a-folder.csv":
        path.mkdir()
    result = cli(config, "replay", str(path))
    assert result.exit_code in (1, 2), result.output  # 2: click refused the argument
    assert name in result.stderr and len(result.stderr.splitlines()) <= 3


# --- replay: bad rows among good ones -------------------------------------------


def bad_rows() -> dict[str, str]:
    """One hostile row per case (CSV text, columns of HEADER)."""
    t = between_good_rows()
    return {
        "year-0001": "0001-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.5,,",
        "year-9999": "9999-12-31T23:00:00-05:00,tp_ca_mau,water_level,0.5,,",
        "year-2099": "2099-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.5,,",
        "forecast-2099": "2099-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.5,forecast,"
        "2099-01-01T00:00:00+07:00",
        "issued-year-9999": f"{t},tp_ca_mau,water_level,0.5,forecast,9999-01-01T00:00:00Z",
        "no-utc-offset": f"{t[:19]},tp_ca_mau,water_level,0.5,,",
        "time-garbage": "yesterday,tp_ca_mau,water_level,0.5,,",
        "february-30": "2025-02-30T00:00:00+07:00,tp_ca_mau,water_level,0.5,,",
        "unknown-station": f"{t},atlantis,water_level,0.5,,",
        "station-10k-chars": f"{t},{'x' * 10_000},water_level,0.5,,",
        "value-nan": f"{t},tp_ca_mau,water_level,nan,,",
        "value-inf": f"{t},tp_ca_mau,water_level,inf,,",
        "value-minus-infinity": f"{t},tp_ca_mau,water_level,-Infinity,,",
        "value-1e400": f"{t},tp_ca_mau,water_level,1e400,,",
        "value-5000-digits": f"{t},tp_ca_mau,water_level,{HUGE_DIGITS},,",
        "value-text": f"{t},tp_ca_mau,water_level,high,,",
        "value-underscores": f"{t},tp_ca_mau,water_level,1_0,,",
        "value-arabic-digit": f"{t},tp_ca_mau,water_level,\u0661,,",
        "level-1e6-metres": f"{t},tp_ca_mau,water_level,1000000,,",
        "rain-negative": f"{t},tp_ca_mau,rainfall,-5,,",
        "unknown-variable": f"{t},tp_ca_mau,snowfall,1.0,,",
        "unknown-kind": f"{t},tp_ca_mau,water_level,0.5,guess,",
        "extra-fields": f"{t},tp_ca_mau,water_level,0.5,,,surplus,more",
        "too-few-fields": f"{t},tp_ca_mau",
    }


BAD_ROW_IDS = list(bad_rows())


@pytest.mark.parametrize("case", BAD_ROW_IDS)
def test_replay_lists_a_bad_row_by_line_and_keeps_the_good_ones(tmp_path, config, case):
    first, *rest = good_rows()
    path = tmp_path / "mixed.csv"
    # The bad row is line 3: a good row before it and two after.
    path.write_text("\n".join([HEADER, first, bad_rows()[case], *rest]) + "\n", encoding="utf-8")
    wall = datetime.now(UTC)

    result = cli(config, "replay", "--quiet", str(path))

    assert result.exit_code == 3, result.output
    assert not error_lines(result), result.stderr
    reported = [line for line in result.stderr.splitlines() if "mixed.csv: line 3: " in line]
    assert len(reported) == 1, result.stderr
    assert len(reported[0]) < 400, reported[0][:400]
    assert not [
        line for line in result.stderr.splitlines() if "line 2:" in line or "line 4:" in line
    ]
    database = db_path(config)
    assert count_rows(database, "reading") == 3
    latest = last_cycle(database)
    assert latest is not None and latest <= wall + timedelta(minutes=5), latest


def test_replay_of_a_file_of_only_future_rows_makes_no_cycle(tmp_path, config):
    path = tmp_path / "future.csv"
    rows = [f"2099-01-01T{h:02d}:00:00+07:00,tp_ca_mau,water_level,0.5,," for h in range(6)]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    result = cli(config, "replay", "--quiet", str(path))
    assert result.exit_code == 3, result.output
    assert count_rows(db_path(config), "reading") == 0
    assert last_cycle(db_path(config)) is None
    status = cli(config, "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout).get("last_cycle") in (None, {})


# --- the drop folder: every bad file quarantined, the good ones read -------------


def drop_files() -> dict[str, bytes]:
    """Hostile files for the drop folder: each has one good row of its own, at its own minute."""
    t = between_good_rows()
    top = recent_hours(1)[0]
    files = {f"{name}.csv": data for name, data in NOT_TEXT.items()}
    files["header-200kb.csv"] = (HEADER + "," + "x" * 200_000 + "\n").encode()
    files["missing-columns.csv"] = WHOLE_FILES["missing-columns"]
    files["empty.csv"] = b""
    bad = {
        "year-9999.csv": "9999-12-31T23:00:00Z,tp_ca_mau,water_level,0.5,,",
        "year-2099.csv": "2099-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.5,,",
        "year-0001.csv": "0001-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.5,,",
        "value-nan.csv": f"{t},song_doc,water_level,nan,,",
        "value-5000-digits.csv": f"{t},song_doc,water_level,{HUGE_DIGITS},,",
        "unknown-station.csv": f"{t},atlantis,water_level,0.5,,",
        "extra-fields.csv": f"{t},song_doc,water_level,0.5,,,surplus",
        "no-offset.csv": f"{t[:19]},song_doc,water_level,0.5,,",
        "rain-negative.csv": f"{t},gia_rai,rainfall,-5,,",
    }
    for i, (name, row) in enumerate(bad.items(), start=1):
        good = f"{(top - timedelta(minutes=i)).isoformat()},nam_can,water_level,0.4,,"
        files[name] = "\n".join([HEADER, good, row, ""]).encode()
    return files


DROP_NAMES = list(drop_files())


@pytest.fixture(scope="module")
def dropped(tmp_path_factory):
    """One `poll` over a drop folder holding every hostile file and one good file."""
    root = tmp_path_factory.mktemp("drop")
    folder = root / "drop"
    folder.mkdir()
    config = write_config(root, extra=f'[sources.drop]\ntype = "drop_folder"\npath = "{folder}"\n')
    files = {**drop_files(), "good.csv": ("\n".join([HEADER, *good_rows()]) + "\n").encode()}
    then = time.time() - 60  # settled: not being copied any more
    for name, data in files.items():
        (folder / name).write_bytes(data)
        os.utime(folder / name, (then, then))
    result = cli(config, "poll")
    return folder, config, result


def test_poll_over_hostile_files_exits_0_and_archives_the_good_file(dropped):
    folder, config, result = dropped
    assert result.exit_code == 0, result.output
    assert (folder / "archive" / "good.csv").is_file()
    assert sorted(p.name for p in folder.glob("*.csv")) == []  # nothing left behind
    with sqlite3.connect(db_path(config)) as conn:
        (good,) = conn.execute(
            "SELECT count(*) FROM reading WHERE station = 'tp_ca_mau'"
        ).fetchone()
    assert good >= 3


@pytest.mark.parametrize("name", DROP_NAMES)
def test_each_hostile_drop_file_is_quarantined_with_its_reason(dropped, name):
    folder, _config, _result = dropped
    assert (folder / "quarantine" / name).is_file(), sorted(p.name for p in folder.rglob("*"))
    report = folder / "quarantine" / f"{name}.error.txt"
    assert report.is_file()
    text = report.read_text(encoding="utf-8")
    assert name in text and len(text.splitlines()) < 20
    assert "Traceback" not in text


# --- http_json: hostile payloads -------------------------------------------------


def payloads() -> dict[str, Reply]:
    """One hostile reply per case, served for the `bad` remote station."""
    t = between_good_rows()

    def record(value: str, when: str = t) -> str:
        return f'[{{"time": "{when}", "value": {value}}}]'

    return {
        "nested-100000-deep": Reply.json("[" * DEEP + "]" * DEEP),
        "number-5000-digits": Reply.json(record(HUGE_DIGITS)),
        "nan-literal": Reply.json(record("NaN")),
        "infinity-literal": Reply.json(record("Infinity")),
        "value-1e400": Reply.json(record("1e400")),
        "value-text": Reply.json(record('"high"')),
        "value-true": Reply.json(record("true")),
        "value-object": Reply.json(record("{}")),
        "level-1e6": Reply.json(record("1000000")),
        "time-year-9999": Reply.json(record("1.0", "9999-12-31T00:00:00+00:00")),
        "time-year-2099": Reply.json(record("1.0", "2099-01-01T00:00:00+07:00")),
        "time-garbage": Reply.json(record("1.0", "yesterday")),
        "wrong-shape-object": Reply.json('{"data": 1}'),
        "wrong-shape-lists": Reply.json("[[1, 2], [3]]"),
        "nulls-100000": Reply.json("[" + ", ".join(["null"] * 100_000) + "]"),
        "html-instead": Reply(200, "<html><body>502 Bad Gateway</body></html>",
                              {"Content-Type": "text/html"}),
        "empty-body": Reply.json(""),
        "gzip-body": Reply(200, gzip.compress(record("1.0").encode()),
                           {"Content-Type": "application/json"}),
        "utf16-body": Reply(200, record("1.0").encode("utf-16"),
                            {"Content-Type": "application/json"}),
    }  # fmt: skip


PAYLOAD_IDS = list(payloads())


@pytest.fixture(scope="module")
def gauge_server():
    """A fake gauge API for the whole module; each test sets the `bad` route."""
    with FakeServer() as server:
        yield server


@pytest.mark.parametrize("case", PAYLOAD_IDS)
def test_hostile_payload_is_recorded_and_spares_the_other_station(
    tmp_path, gauge_server, case, caplog
):
    t = between_good_rows()
    gauge_server.routes["/obs/good"] = [Reply.json(f'[{{"time": "{t}", "value": 0.55}}]')]
    gauge_server.routes["/obs/bad"] = [payloads()[case]]
    config = write_config(
        tmp_path,
        extra=(
            '[http]\nretries = 0\n\n[sources.gauges]\ntype = "http_json"\n'
            f'url = "{gauge_server.url}/obs/{{station}}"\n'
            '[sources.gauges.stations]\ngood = "tp_ca_mau"\nbad = "song_doc"\n'
        ),
    )

    result = cli(config, "poll")

    assert result.exit_code == 0, result.output
    with sqlite3.connect(db_path(config)) as conn:
        counts = dict(conn.execute("SELECT station, count(*) FROM reading GROUP BY station"))
        runs = conn.execute("SELECT ok, rejected, error, details FROM source_run").fetchall()
    assert counts.get("tp_ca_mau", 0) >= 1, counts
    assert counts.get("song_doc", 0) == 0, counts
    [(ok, rejected, error, details)] = runs
    assert (not ok) or rejected >= 1, runs
    assert "internal error" not in f"{error} {details}", (error, details)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    sources = cli(config, "sources")
    assert sources.exit_code == 0 and "gauges" in sources.stdout


# --- command-line parameters ----------------------------------------------------

CLI_CASES = [
    ("poll-at-year-9999", ["poll", "--at", "9999-12-31T00:00+07:00"]),
    ("poll-at-year-2099", ["poll", "--at", "2099-01-01T00:00+07:00"]),
    ("poll-at-year-0001", ["poll", "--at", "0001-01-01T00:00+07:00"]),
    ("status-at-year-0001", ["status", "--at", "0001-01-01"]),
    ("status-at-not-a-date", ["status", "--at", "notadate"]),
    ("events-from-impossible", ["events", "--from", "9999-99-99"]),
    ("events-to-year-0001", ["events", "--to", "0001-01-01"]),
    ("mute-hours-huge", ["mute", "cm-de-tham", "--hours", "9" * 30]),
    ("retention-days-huge", ["db", "retention", "--days", "9" * 30]),
    ("tide-predict-year-0001", ["tide", "predict", "tp_ca_mau", "--from", "0001-01-01",
                                "--to", "0001-01-03"]),
    ("tide-predict-nul-station", ["tide", "predict", "tp_ca_mau\x00"]),
]  # fmt: skip


@pytest.mark.parametrize("args", [c[1] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_hostile_command_line_value_is_refused_without_a_traceback(config, args):
    wall = datetime.now(UTC)
    result = cli(config, *args)
    assert result.exit_code in (1, 2), result.output[-500:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(line.startswith(("error: ", "Error: ")) for line in lines), result.stderr
    latest = last_cycle(db_path(config))
    assert latest is None or latest <= wall + timedelta(minutes=5), latest
